"""Training stage of tgv-deploy, installed as ``tgv_deploy.training``."""
