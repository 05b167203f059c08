"""The extension cephmount/ceph/native_build.py builds (cffi API mode)."""

from typing import Any

ffi: Any
lib: Any
