"""Streaming reconstruction for scanner integration (torch-free except the model backend).

* :mod:`tgv_deploy.stream.assembly`: acquisitions (MRD v2 ``mrd.Acquisition`` or ISMRMRD v1
  ``ismrmrd.Acquisition``) into one slice at a time, as :class:`~tgv_deploy.data.multicoil.MultiCoilSlice`;
* :mod:`tgv_deploy.stream.mrd2`: MRD v2 binary streams in, images out (``tgv-deploy mrd``) and the
  retrospective undersampling filter (``tgv-deploy mrd-undersample``);
* :mod:`tgv_deploy.stream.mrd_server`: a python-ismrmrd-server handler (``process(connection, config, metadata)``).
"""
