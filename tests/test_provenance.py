"""The code version recorded with results: a commit, and a dirty flag read from the repository's root."""

import subprocess

from loracompose.provenance import git_commit


def _git(repo, *args):
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def test_dirty_paths_are_read_from_the_repository_root(tmp_path):
    repo = tmp_path / "repo"
    (repo / "src" / "pkg").mkdir(parents=True)
    (repo / "configs").mkdir()
    (repo / "src" / "pkg" / "a.py").write_text("x = 1\n")
    (repo / "configs" / "c.yaml").write_text("a: 1\n")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    inside = repo / "src" / "pkg"  # as the package calls it: from its own directory
    head = git_commit(inside)
    assert head is not None and len(head) == 40
    assert git_commit(inside, dirty_paths=("src", "configs")) == head
    (repo / "configs" / "c.yaml").write_text("a: 2\n")  # a change outside the calling directory
    assert git_commit(inside, dirty_paths=("src", "configs")) == head + "+local-changes"
    assert git_commit(inside, dirty_paths=("src",)) == head
    assert git_commit(inside, dirty_paths=(".",)) == head + "+local-changes"
    assert git_commit(tmp_path) is None  # not a checkout
