"""The sandbox's Node side: the Node.js version check and the npm package cache (fake ``node``/``npm``)."""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import pytest

from raidiam_sandbox.runner import (
    AUTHSERVER_DIR,
    NPM_CACHE_ENV,
    SandboxError,
    check_node,
    min_node_major,
    npm_cache_dir,
    prepare_authserver,
)

FAKE_NPM = """#!/bin/sh
echo "$PWD" >> "{calls}"
sleep 0.2
mkdir -p node_modules/oidc-provider
exit {status}
"""


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with a fake ``node`` (reports $FAKE_NODE_VERSION) and a fake ``npm`` that logs its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    node = bin_dir / "node"
    node.write_text('#!/bin/sh\necho "$FAKE_NODE_VERSION"\n')
    node.chmod(0o755)
    write_npm(bin_dir, status=0)
    monkeypatch.setenv(NPM_CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setenv("FAKE_NODE_VERSION", "v20.11.1")
    return bin_dir


def write_npm(bin_dir: Path, status: int) -> None:
    npm = bin_dir / "npm"
    npm.write_text(FAKE_NPM.format(calls=bin_dir / "npm-calls", status=status))
    npm.chmod(0o755)


def npm_calls(bin_dir: Path) -> list[str]:
    calls = bin_dir / "npm-calls"
    return calls.read_text().splitlines() if calls.exists() else []


def lock_digest() -> str:
    return hashlib.sha256((AUTHSERVER_DIR / "package-lock.json").read_bytes()).hexdigest()[:16]


def test_the_node_version_comes_from_package_json_engines() -> None:
    engines = json.loads((AUTHSERVER_DIR / "package.json").read_text())["engines"]["node"]
    assert engines == f">={min_node_major()}.0.0"
    assert min_node_major() >= 20


@pytest.mark.parametrize("version", ["v18.19.0", "v19.9.0"])
def test_too_old_node_is_refused_with_the_version_needed(
    tools: Path, monkeypatch: pytest.MonkeyPatch, version: str
) -> None:
    monkeypatch.setenv("FAKE_NODE_VERSION", version)
    with pytest.raises(SandboxError, match=rf"{version}.*too old.*Node\.js {min_node_major()} or later"):
        check_node(str(tools / "node"))


def test_supported_node_is_accepted(tools: Path) -> None:
    assert check_node(str(tools / "node")) == str(tools / "node")


def test_npm_packages_go_to_a_cache_keyed_by_the_lockfile(tools: Path, tmp_path: Path) -> None:
    first = prepare_authserver(str(tools / "node"), tmp_path / "run-1", tmp_path / "npm.log")
    second = prepare_authserver(str(tools / "node"), tmp_path / "run-2", tmp_path / "npm.log")

    install_dir = tmp_path / "cache" / lock_digest()
    assert npm_calls(tools) == [str(install_dir)]  # once, in the cache, never in the package
    assert not (AUTHSERVER_DIR / "node_modules").exists()
    for run_dir in (first, second):
        assert (run_dir / "node_modules").resolve() == (install_dir / "node_modules").resolve()
        assert (run_dir / "node_modules" / "oidc-provider").is_dir()
        assert (run_dir / "server.mjs").read_bytes() == (AUTHSERVER_DIR / "server.mjs").read_bytes()


def test_concurrent_starts_install_once(tools: Path, tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            prepare_authserver(str(tools / "node"), tmp_path / f"run-{n}", tmp_path / f"npm-{n}.log")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(npm_calls(tools)) == 1


def test_a_failed_install_is_reported_and_retried(tools: Path, tmp_path: Path) -> None:
    write_npm(tools, status=1)
    with pytest.raises(SandboxError, match="'npm ci' failed"):
        prepare_authserver(str(tools / "node"), tmp_path / "run", tmp_path / "npm.log")
    write_npm(tools, status=0)
    prepare_authserver(str(tools / "node"), tmp_path / "run", tmp_path / "npm.log")
    assert len(npm_calls(tools)) == 2


def test_cache_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(NPM_CACHE_ENV, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert npm_cache_dir() == tmp_path / "xdg" / "raidiam-sandbox" / "npm"
    monkeypatch.setenv(NPM_CACHE_ENV, str(tmp_path / "elsewhere"))
    assert npm_cache_dir() == tmp_path / "elsewhere"
