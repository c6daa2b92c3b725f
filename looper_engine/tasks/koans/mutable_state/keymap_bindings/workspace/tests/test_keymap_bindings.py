from keymap import Keymap, default_keymap, run_command


def test_manual_binding():
    keymap = Keymap()
    keymap.bind("f5", lambda: run_command("refresh"))
    assert keymap.press("f5") == "ran refresh"
    assert keymap.press("f6") == "f6 is not bound"


def test_rebinding_replaces_the_action():
    keymap = default_keymap(["save"])
    keymap.bind("ctrl+1", lambda: run_command("save as"))
    assert keymap.press("ctrl+1") == "ran save as"


def test_default_keymap_binds_each_command():
    keymap = default_keymap(["save", "build", "test"])
    assert keymap.keys() == ["ctrl+1", "ctrl+2", "ctrl+3"]
    assert keymap.press("ctrl+1") == "ran save"
    assert keymap.press("ctrl+2") == "ran build"
    assert keymap.press("ctrl+3") == "ran test"
