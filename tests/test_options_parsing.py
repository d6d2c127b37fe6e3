"""``key=value`` options (VarParsing-style): parsing, types, lists, errors, help, options a config
registers, and the standard options applied to the process."""

from __future__ import annotations

import textwrap

import pytest

from framework.config.varparsing import STANDARD, Options, OptionsHelp
from framework.configloader import load_config
from framework.exceptions import ConfigurationError

STANDARD_NAMES = ["maxEvents", "skipEvents", "inputFiles", "outputFile", "numThreads", "numStreams"]


def test_standard_options_and_defaults():
    opts = Options()
    for name in STANDARD_NAMES:
        assert name in opts.names()
        assert not opts.given(name)
    assert (opts.maxEvents, opts.skipEvents, opts.inputFiles, opts.outputFile) == (-1, 0, [], "")
    assert {s[0] for s in STANDARD} >= set(STANDARD_NAMES)


def test_key_value_parsing_with_types_and_lists():
    opts = Options().parseArguments(
        ["maxEvents=10", "skipEvents=0x10", "inputFiles=a.root, b.root,,dir/c.root", "outputFile=x=y.root",
         "numThreads=4", "numStreams=0"]
    )
    assert opts.maxEvents == 10 and isinstance(opts.maxEvents, int)
    assert opts.skipEvents == 16
    assert opts.inputFiles == ["a.root", "b.root", "dir/c.root"]
    assert opts.outputFile == "x=y.root"  # only the first '=' separates key and value
    assert (opts.numThreads, opts.numStreams) == (4, 0)
    assert opts.given("maxEvents") and opts.given("numStreams")


def test_registered_options_of_each_type():
    opts = Options()
    opts.register("ptCut", 20.0, float, "jet pt cut (GeV)")
    opts.register("useFilter", False, bool, "apply the filter")
    opts.register("runs", [], int, "runs to keep", multiple=True)
    opts.register("tag", "v1", str, "a tag")
    opts.parseArguments(["ptCut=35.5", "useFilter=yes", "runs=1, 2,3", "tag=v2"])
    assert opts.ptCut == 35.5 and isinstance(opts.ptCut, float)
    assert opts.useFilter is True
    assert opts.runs == [1, 2, 3]
    assert opts.tag == "v2"
    for text, value in [("0", False), ("off", False), ("True", True), ("1", True)]:
        assert opts.parseArguments([f"useFilter={text}"]).useFilter is value


def test_unregistered_option_keeps_the_default_and_set_default():
    opts = Options()
    opts.register("ptCut", 20.0, float)
    opts.setDefault("maxEvents", 100)
    opts.parseArguments([])
    assert opts.ptCut == 20.0 and opts.maxEvents == 100 and not opts.given("ptCut")
    opts.parseArguments(["maxEvents=3"])
    opts.setDefault("maxEvents", 200)  # a value given on the command line wins over a later default
    assert opts.maxEvents == 3


def test_unknown_key_lists_the_valid_keys():
    opts = Options()
    opts.register("ptCut", 20.0, float)
    with pytest.raises(ConfigurationError) as err:
        opts.parseArguments(["maxEvent=3"])
    msg = str(err.value)
    assert "unknown option 'maxEvent'" in msg and "Did you mean 'maxEvents'" in msg
    for name in [*STANDARD_NAMES, "ptCut"]:
        assert name in msg.split("Valid keys:")[1]


@pytest.mark.parametrize(
    ("arg", "expected"),
    [("maxEvents=ten", "an integer"), ("maxEvents=1.5", "an integer"), ("ptCut=fast", "a number"),
     ("useFilter=maybe", "a boolean (1/0, true/false)"), ("runs=1,x", "a comma-separated list of int")],
)
def test_bad_value_is_an_error_naming_the_option_and_the_type(arg, expected):
    opts = Options()
    opts.register("ptCut", 20.0, float, "jet pt cut")
    opts.register("useFilter", False, bool)
    opts.register("runs", [], int, multiple=True)
    with pytest.raises(ConfigurationError) as err:
        opts.parseArguments([arg])
    msg = str(err.value)
    key = arg.split("=")[0]
    assert f"option {key}=" in msg and f"expected {expected}" in msg
    assert "Valid keys:" not in msg  # the key is right, only its value is not


def test_argument_without_equals_sign():
    with pytest.raises(ConfigurationError, match=r"'maxEvents' is not of the form key=value. Valid keys: maxEvents"):
        Options().parseArguments(["maxEvents"])


def test_bad_option_name_on_register():
    with pytest.raises(ConfigurationError):
        Options().register("not-an-identifier", 1, int)


def test_help_lists_every_option_with_help_and_default():
    opts = Options()
    opts.register("ptCut", 20.0, float, "jet pt cut (GeV)")
    with pytest.raises(OptionsHelp) as err:
        opts.parseArguments(["maxEvents=3", "help"])
    text = str(err.value)
    for name in [*STANDARD_NAMES, "ptCut"]:
        assert f"  {name} " in text
    assert "jet pt cut (GeV) [default: 20.0]" in text
    assert "number of events to process (-1 = all) [default: -1]" in text


# ------------------------------------------------------------------------------------------ configs
CONFIG = textwrap.dedent(
    """
    import framework.config as cms
    import tests.plugins  # noqa: F401

    options = cms.options
    options.register("ptCut", 20.0, float, "jet pt cut (GeV)")
    options.register("useFilter", False, bool, "keep even events only")
    options.parseArguments()

    process = cms.Process("OPT")
    process.source = cms.Source("RootSource", fileNames=["in.root"])
    process.maxEvents.input = 5
    process.options.numberOfThreads = 2
    process.prod = cms.EDProducer("TestRequiredParamProducer", src="x", threshold=options.ptCut)
    process.flt = cms.EDFilter("TestEvenFilter")
    process.p = cms.Path(process.flt, process.prod) if options.useFilter else cms.Path(process.prod)
    process.out = cms.OutputModule("RootOutputModule", fileName="default.root")
    process.e = cms.EndPath(process.out)
    """
)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "opt_cfg.py"
    path.write_text(CONFIG)
    return str(path)


def test_standard_options_are_applied_to_the_process(config):
    process, opts = load_config(
        config,
        ["maxEvents=7", "inputFiles=a.root,b.root", "outputFile=o.root", "numThreads=3", "numStreams=6",
         "skipEvents=2"],
    )
    assert process.maxEventsValue() == 7
    assert process.source.fileNames == ["a.root", "b.root"]
    assert process.source.skipEvents == 2
    assert process.out.fileName == "o.root"
    assert process.optionValue("numberOfThreads") == 3
    assert process.optionValue("numberOfStreams") == 6
    assert opts.inputFiles == ["a.root", "b.root"]


def test_options_not_given_keep_the_config_values(config):
    process, _ = load_config(config, [])
    assert process.maxEventsValue() == 5
    assert process.source.fileNames == ["in.root"]
    assert process.out.fileName == "default.root"
    assert process.optionValue("numberOfThreads") == 2 and process.optionValue("numberOfStreams") == 0
    assert "skipEvents" not in process.source


def test_config_registers_and_uses_its_own_options(config):
    process, opts = load_config(config, ["ptCut=35.5", "useFilter=1"])
    assert opts.ptCut == 35.5
    assert process.prod.threshold == 35.5
    assert [m.label_() for m in process.p.moduleSequence()] == ["flt", "prod"]
    process, _ = load_config(config, [])
    assert process.prod.threshold == 20.0
    assert [m.label_() for m in process.p.moduleSequence()] == ["prod"]


def test_config_help_includes_its_own_options(config):
    with pytest.raises(OptionsHelp) as err:
        load_config(config, ["help"])
    assert "ptCut" in str(err.value) and "jet pt cut (GeV)" in str(err.value)
    assert "inputFiles" in str(err.value)


def test_unknown_option_and_bad_value_in_a_config(config):
    with pytest.raises(ConfigurationError, match=r"unknown option 'ptcut'.*Did you mean 'ptCut'.*Valid keys:.*useFilter"):
        load_config(config, ["ptcut=3"])
    with pytest.raises(ConfigurationError, match=r"option ptCut='high': expected a number; ptCut: jet pt cut"):
        load_config(config, ["ptCut=high"])


def test_standard_option_that_the_config_cannot_use(tmp_path):
    path = tmp_path / "empty_cfg.py"
    path.write_text(
        "import framework.config as cms\n"
        "process = cms.Process('E')\n"
        "process.source = cms.Source('EmptySource')\n"
    )
    with pytest.raises(ConfigurationError, match="no output module"):
        load_config(str(path), ["outputFile=x.root"])
    with pytest.raises(ConfigurationError, match="reads no files"):
        load_config(str(path), ["inputFiles=x.root"])
    process, _ = load_config(str(path), ["skipEvents=4", "maxEvents=0"])
    assert process.source.skipEvents == 4 and process.maxEventsValue() == 0
