"""Modules added and removed while the server runs (POST/DELETE /admin/modules).

    add(engine, scheduler, directory)  a directory directly under the server's --modules directory, named
                                       by its directory name (never a path): found and checked exactly as
                                       at start-up (`discover_modules`, then `ModuleBank`: safetensors only,
                                       shapes, finite values, the base fingerprint), then fused in
    remove(engine, scheduler, name)    new requests naming it get 404 at once; requests already accepted
                                       (running or queued) finish with it; it leaves the fused layers when
                                       the last of them is done

The fused layers change only in the scheduler thread, between two decode steps
(`Scheduler.call`): the bank is rebuilt from the modules already in memory plus or
minus one, and every running row's weights move to the new columns by module name
(`Decoder.remap_columns`), so in-flight requests decode on unchanged.
"""

from __future__ import annotations

from loracompose.compose.bank import LoadedModule, ModuleBank, discover_modules
from loracompose.compose.fused import ComposedModel
from loracompose.errors import LoraComposeError
from loracompose.serve.engine import ApiError, Engine, shown


def _checked(engine: Engine, directory: str) -> LoadedModule:
    """The module in `directory` (a name under --modules), validated as at start-up; ApiError otherwise."""
    if engine.modules_dir is None:
        raise ApiError(409, "this server was started without --modules; there is no directory to load modules "
                            "from", "directory")
    if not directory or directory in (".", "..") or any(c in directory for c in "/\\\0"):
        raise ApiError(400, f"directory '{shown(directory)}' must be the name of a directory directly under the "
                            "server's modules directory, not a path", "directory")
    refused: dict[str, str] = {}
    try:
        found = discover_modules(engine.modules_dir, refused)
    except LoraComposeError:  # no module at all in the directory
        found = {}
    if directory in refused:
        raise ApiError(422, f"module directory '{shown(directory)}' is refused: {refused[directory]}", "directory")
    name = next((n for n, path in found.items() if path.name == directory), None)
    if name is None:
        entries = sorted(p.name for p in found.values())
        raise ApiError(404, f"no module directory '{shown(directory)}' under the server's modules directory; "
                            f"module directories there: {', '.join(entries) or 'none'}", "directory")
    with engine.modules_lock:
        if name in engine.bank.names:
            state = "being removed; retry once it is gone" if name in engine.draining else "already served"
            raise ApiError(409, f"module '{shown(name)}' is {state}", "directory")
        try:
            bank = ModuleBank(engine.model, {name: found[name]}, engine.fingerprint)
        except LoraComposeError as exc:
            raise ApiError(422, f"module '{shown(name)}' is refused: {shown(str(exc), 400)}", "directory") from None
    return bank.modules[0]


def rebank(engine: Engine, modules: list[LoadedModule]) -> list[str]:
    """Fuse `modules` in place of the bank (scheduler thread only); returns the old module names."""
    with engine.modules_lock:
        old = list(engine.composed.bank.names)
        engine.composed.detach()
        engine.bank = ModuleBank.from_loaded(modules)
        engine.composed = ComposedModel(engine.model, engine.bank)
        engine.draining &= set(engine.bank.names)
    return old


def add(engine: Engine, scheduler, directory: str) -> dict:
    module = _checked(engine, directory)

    def fuse() -> None:
        if module.name in engine.bank.names:  # a concurrent add of the same module got there first
            raise ApiError(409, f"module '{shown(module.name)}' is already served", "directory")
        scheduler.rebank(engine.bank.modules + [module])

    scheduler.call(fuse)
    engine.refused.pop(directory, None)
    engine.refused.pop(module.name, None)
    return {"id": module.name, "status": "added", "modules": [m.name for m in engine.served()]}


def remove(engine: Engine, scheduler, name: str) -> dict:
    with engine.modules_lock:
        if name not in engine.bank.names or name in engine.draining:
            names = ", ".join(m.name for m in engine.served()) or "none"
            raise ApiError(404, f"unknown module '{shown(name)}'; known modules: {names}", "name")
        engine.draining.add(name)
    scheduler.call(scheduler.prune)
    status = "draining" if name in engine.bank.names else "removed"
    return {"id": name, "status": status, "modules": [m.name for m in engine.served()]}
