"""Where the tests find the repository, its golden files and the shared corpus of real logs."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden"
CORPUS = REPO.parent / "shared" / "corpus" / "nnunet_logs"
