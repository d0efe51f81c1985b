"""tgv-deploy as a python-ismrmrd-server handler, for servers that load a handler from a file by name.

Copy (or link) this file next to the server's ``main.py`` and send the config name ``mrd_handler``;
the handler is :func:`tgv_deploy.stream.mrd_server.process`, whose docstring lists the settings
(JSON configuration ``parameters`` such as ``"model"``, or ``TGV_DEPLOY_MODEL`` in the environment).
Needs ``pip install 'tgv-deploy[mrd,torch]'`` (or ``[mrd,cpu]`` for an exported ``.onnx`` model).
"""

from tgv_deploy.stream.mrd_server import process

__all__ = ["process"]
