"""MkDocs hook: adds the generated reference pages (docs/gen_reference.py) to the build, in memory."""

from __future__ import annotations

import sys
from pathlib import Path

from mkdocs.structure.files import File

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's rnnlab first

import gen_reference  # noqa: E402


def on_files(files, config):
    for page, text in gen_reference.generate().items():
        files.append(File.generated(config, page, content=text))
    return files
