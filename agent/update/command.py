"""The `update` command from the fleet: {"url": "https://.../bundle.tar"} or {"path": ...},
optionally {"allow_downgrade": true}. Runs on a worker thread (it installs a virtualenv);
on success the result carries `restart_agent`, and the executor restarts the agent into
the new slot, where its trial begins."""

from typing import Any, Callable, Dict

from agent.control.builtin import CommandError
from agent.errors import UpdateError
from agent.update.slots import apply_bundle
from simpul_wire.config import AgentConfig

Handler = Callable[[Dict[str, Any]], Dict[str, Any]]


def update_command(config: AgentConfig, config_path: str) -> Handler:
    def run(args: Dict[str, Any]) -> Dict[str, Any]:
        source = args.get("url") or args.get("path")
        if not isinstance(source, str) or not source:
            raise CommandError("args.url (or args.path) must name the bundle")
        try:
            return apply_bundle(config, config_path, source,
                                allow_downgrade=bool(args.get("allow_downgrade", False)))
        except UpdateError as exc:
            raise CommandError(str(exc)) from exc

    return run
