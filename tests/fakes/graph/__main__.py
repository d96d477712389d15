"""`python -m tests.fakes.graph --port N [--latency-ms N] [--user EMAIL ...]`."""

from ..server import serve_main
from .handler import build

if __name__ == "__main__":
    serve_main("graph", build)
