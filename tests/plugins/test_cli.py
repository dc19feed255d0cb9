"""`sagactl actions` and `sagactl.commands` plugins, run as the installed console script."""

from __future__ import annotations

import json
import os
import pty

import pytest

from .conftest import PluginEnv

pytestmark = pytest.mark.slow


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line]


class TestActionsCommand:
    def test_json_lists_actions_with_distribution_and_schemas(self, plugin_env: PluginEnv) -> None:
        """`--json` is an array of actions with distribution, version, compensable, schemas."""
        done = plugin_env.sagactl("actions", "--json")
        assert done.returncode == 0, done.stderr
        actions = {a["name"]: a for a in json.loads(done.stdout)}
        notify = actions["acme.notify"]
        assert notify["distribution"] == "acme-saga-plugin"
        assert notify["version"] == "1.2.0"
        assert notify["compensable"] is True
        assert notify["input_schema"]["required"] == ["url"]
        assert actions["acme.page"]["compensable"] is False
        assert list(actions) == sorted(actions)

    def test_broken_plugins_are_one_warning_line_each(self, plugin_env: PluginEnv) -> None:
        """Each broken action and command is one stderr line naming acme-broken-plugin; exit 0."""
        done = plugin_env.sagactl("actions", "--json")
        assert done.returncode == 0
        lines = _warnings(done.stderr)
        assert len(lines) == 6, lines  # 4 actions, 2 commands
        for line in lines:
            assert line.startswith("warning: ")
            assert "from acme-broken-plugin 0.3.0" in line
        assert "Traceback" not in done.stderr

    def test_strict_exits_1_on_plugin_errors(self, plugin_env: PluginEnv) -> None:
        """`--strict` still lists the actions but exits 1 and calls the problems errors."""
        done = plugin_env.sagactl("actions", "--strict")
        assert done.returncode == 1
        assert "acme.notify" in done.stdout
        assert any(
            line.startswith("error: action 'broken.import'") for line in _warnings(done.stderr)
        )

    def test_plain_table_when_not_a_terminal(self, plugin_env: PluginEnv) -> None:
        """Piped output is a plain table: header, then one line per action with its schemas."""
        done = plugin_env.sagactl("actions")
        lines = done.stdout.splitlines()
        assert lines[0].split() == [
            "ACTION", "DISTRIBUTION", "VERSION", "COMPENSABLE", "INPUTS", "OUTPUTS"
        ]  # fmt: skip
        notify = next(line for line in lines if line.startswith("acme.notify "))
        assert notify.split(None, 4)[:4] == ["acme.notify", "acme-saga-plugin", "1.2.0", "yes"]
        assert "url*: string, retries: integer" in notify
        assert notify.rstrip().endswith("status: integer")
        assert "│" not in done.stdout and "\x1b[" not in done.stdout

    def test_rich_table_on_a_terminal(self, plugin_env: PluginEnv) -> None:
        """On a terminal the list is a rich table."""
        leader, follower = pty.openpty()
        try:
            done = plugin_env.sagactl("actions", stdout=follower)
            os.close(follower)
            follower = -1
            output = b""
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the child's side is closed
                    break
                if not chunk:
                    break
                output += chunk
        finally:
            os.close(leader)
            if follower >= 0:
                os.close(follower)
        text = output.decode()
        assert done.returncode == 0
        assert "Installed actions" in text
        assert "┃" in text or "│" in text
        assert "acme.notify" in text and "acme-saga-plugin" in text

    def test_clash_reported_naming_both_distributions(self, plugin_env: PluginEnv) -> None:
        """With the duplicate installed: one line names both distributions; the rest is listed."""
        done = plugin_env.sagactl("actions", "--json", dup=True)
        assert done.returncode == 0
        names = [a["name"] for a in json.loads(done.stdout)]
        assert "acme.notify" not in names
        assert {"acme.page", "dup.only"} <= set(names)
        clashes = [line for line in _warnings(done.stderr) if "claimed by" in line]
        assert len(clashes) == 2  # acme.notify and the acme-hello command
        notify = next(line for line in clashes if "'acme.notify'" in line)
        assert "acme-dup-plugin 0.1.0" in notify and "acme-saga-plugin 1.2.0" in notify


class TestCommandPlugins:
    def test_command_object_runs(self, plugin_env: PluginEnv) -> None:
        """A `sagactl.commands` entry point naming a click command becomes a subcommand."""
        done = plugin_env.sagactl("acme-hello", "bob")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "hello bob from acme\n"

    def test_command_factory_runs(self, plugin_env: PluginEnv) -> None:
        """An entry point naming a function that returns a command works as well."""
        done = plugin_env.sagactl("acme-greet")
        assert done.returncode == 0, done.stderr
        assert done.stdout == "greetings from acme\n"

    def test_broken_commands_warn_once_and_cli_works(self, plugin_env: PluginEnv) -> None:
        """Each broken command plugin is one warning line; the other commands still run."""
        done = plugin_env.sagactl("--help")
        assert done.returncode == 0
        lines = _warnings(done.stderr)
        assert len(lines) == 2, lines
        assert lines[0].startswith("warning: command 'broken-cmd' from acme-broken-plugin 0.3.0")
        assert "RuntimeError: acme_broken cannot start" in lines[0]
        assert "returned a str, not a click command" in lines[1]
        assert "acme-hello" in done.stdout and "actions" in done.stdout
        assert "broken-cmd" not in done.stdout

    def test_clashing_command_is_not_added(self, plugin_env: PluginEnv) -> None:
        """A command name two distributions claim is left out, with a warning naming both."""
        done = plugin_env.sagactl("acme-hello", dup=True)
        assert done.returncode == 2
        assert "No such command 'acme-hello'" in done.stderr
        assert any(
            "'acme-hello' is claimed by 2 distributions: acme-dup-plugin 0.1.0" in line
            for line in _warnings(done.stderr)
        )
