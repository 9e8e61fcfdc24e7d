import subprocess
import sys


def test_import_does_not_pull_matplotlib():
    code = "import sys, impediments; assert 'matplotlib' not in sys.modules, sorted(m for m in sys.modules if 'matplotlib' in m)"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_core_packages_never_import_matplotlib():
    """The core (activations, init, norm, monitor, doctor) must not import matplotlib, even indirectly."""
    code = (
        "import importlib, sys\n"
        "for p in ('activations','init','norm','monitor','doctor','data','models','train'):\n"
        "    try: importlib.import_module('impediments.'+p)\n"
        "    except ModuleNotFoundError as e:\n"
        "        if e.name != 'impediments.'+p: raise\n"
        "assert 'matplotlib' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_py_typed_marker_ships():
    import importlib.resources

    assert importlib.resources.files("impediments").joinpath("py.typed").is_file()
