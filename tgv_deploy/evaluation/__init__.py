"""The pieces of ``tgv-deploy evaluate``: cases, scoring, reports (orchestrated by :mod:`tgv_deploy.evaluate`)."""
