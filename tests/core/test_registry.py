"""Class paths read from files resolve only to lvlm's components (or a registered plugin's), vetted before import."""

from __future__ import annotations

import pytest

from lvlm.core.errors import UnsafeInputError
from lvlm.core.registry import resolve_component, trusted_packages
from lvlm.models.projector import MLPGeluProjector, Projector
from lvlm.models.vision.base import VisionTower
from tests.core.plugin_fixtures import installed_plugin

PAYLOADS = [
    "os.system",
    "subprocess.Popen",
    "builtins.eval",
    "posix.system",
    "lvlm.core.registry.importlib",  # a module reached through an lvlm module
    "lvlm.core.registry.resolve_component",  # an lvlm function, not a component class
    "lvlm.apps.cli.main",
    "torch.nn.Linear",  # a class, but not an lvlm component
    "lvlm.models.projector.Projector.__subclasses__",
    "../evil.Tower",
    "os.system; rm -rf /",
    "",
    42,
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_anything_but_a_component_class_is_refused(payload):
    with pytest.raises(UnsafeInputError, match=r"model/lvlm_config.json: projector.class_path"):
        resolve_component(payload, Projector, "model/lvlm_config.json: projector.class_path")


def test_a_component_of_lvlm_resolves():
    path = "lvlm.models.projector.MLPGeluProjector"
    assert resolve_component(path, Projector, "x") is MLPGeluProjector


def test_an_unregistered_package_is_refused_before_it_is_imported(tmp_path):
    marker = tmp_path / "marker"
    (tmp_path / "evil_pkg").mkdir()
    (tmp_path / "evil_pkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\nclass T: pass\n")
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        with pytest.raises(UnsafeInputError, match="refused class path 'evil_pkg.T'"):
            resolve_component("evil_pkg.T", VisionTower, "where")
    finally:
        sys.path.remove(str(tmp_path))
    assert not marker.exists()


TOWER_SOURCE = """
from lvlm.models.vision.clip_tower import CLIPVisionTower


class PluginTower(CLIPVisionTower):
    pass


def not_a_class():
    return None
"""


def test_a_registered_plugin_resolves_by_class_path_and_by_short_name(tmp_path):
    entry_points = "[lvlm.towers]\nplugin_tower = demo_plugin.towers:PluginTower\n"
    with installed_plugin(tmp_path, "demo_plugin", {"towers": TOWER_SOURCE}, entry_points):
        assert "demo_plugin" in trusted_packages()
        by_path = resolve_component("demo_plugin.towers.PluginTower", VisionTower, "x")
        by_name = resolve_component("plugin_tower", VisionTower, "x", group="lvlm.towers")
        assert by_path is by_name and by_path.__name__ == "PluginTower"
        with pytest.raises(UnsafeInputError, match="not a subclass"):
            resolve_component("demo_plugin.towers.not_a_class", VisionTower, "x")
    assert "demo_plugin" not in trusted_packages()
