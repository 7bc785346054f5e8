"""nginx's static modules as ngate's default content handler: static, index, autoindex,
try_files, range, not_modified and expires (see handler.py for the order they run in)."""
from ngate.static.handler import static_handler, try_files_phase

__all__ = ["static_handler", "try_files_phase"]
