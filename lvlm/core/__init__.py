"""Foundation pieces every layer may use; imports nothing of lvlm.

User-facing errors (``errors``, ``text_files``), safe output paths (``outputs``), the resumable work folder
(``work_folder``), the class-path registry and the vetting of saved settings before anything is imported
(``registry``, ``settings_vetting``, ``specs``), a record's identity (``record_identity``) and the recipes packaged
with lvlm (``recipes``).
"""
