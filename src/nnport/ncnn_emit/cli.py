"""CLI plugin: ``--fp16`` for .param outputs."""
from __future__ import annotations


def add_convert_options(parser) -> None:
    parser.add_argument("--fp16", action="store_true",
                        help="ncnn (.param): store weights as float16 in the .bin")


def convert_options(args) -> dict:
    return {"fp16": True} if getattr(args, "fp16", False) else {}
