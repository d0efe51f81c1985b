"""Export stage of tgv-deploy, installed as ``tgv_deploy.export``."""
