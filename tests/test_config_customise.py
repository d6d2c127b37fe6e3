"""``load_config(path, args, modifiers=..., customise=...)`` and the ``procModifiers=`` / ``customise=``
command-line options (cmsDriver's ``--procModifiers`` and ``--customise``), with their errors."""

from __future__ import annotations

import textwrap

import pytest

import framework.config as cms
import tests.plugins  # noqa: F401  (registers the Test* module types)
from framework.config.types import plain
from framework.config.varparsing import OptionsHelp
from framework.configloader import load_config
from framework.exceptions import ConfigurationError
from framework.modifiers import allSonicTriton, deepMETSonicTriton, enableSonicTriton
from tests.main_fixtures import CONFIG as MAIN_CONFIG
from tests.main_fixtures import in_repo

CONFIG = textwrap.dedent(
    """
    import framework.config as cms
    import tests.plugins  # noqa: F401
    from framework.modifiers import deepMETSonicTriton

    process = cms.Process("CUSTOM")
    process.source = cms.Source("EmptySource")
    process.maxEvents.input = 5
    process.prod = cms.EDProducer("TestEventNumberProducer", size=cms.int32(1), seed=cms.int32(0))
    deepMETSonicTriton.toModify(process.prod, seed=11)
    process.p = cms.Path(process.prod)
    """
)

CUSTOMS = textwrap.dedent(
    """
    import framework.config as cms
    from framework.modifiers import enableSonicTriton, tritonService

    def double(process):
        process.prod.size = 2 * process.prod.size.value()
        return process

    def addAnalyzer(process):  # returns None: the process is kept
        process.extra = cms.EDAnalyzer("TestCountingAnalyzer")

    def setMaxEvents(process):
        process.maxEvents.input = 100

    def addTriton(process):
        process.TritonService = tritonService()

    def sizeIfSonic(process):
        enableSonicTriton.toModify(process.prod, size=9)

    def broken(process):
        raise ValueError("boom")

    def notAProcess(process):
        return 42

    threshold = 3
    mySonic = cms.Modifier()
    """
)


@pytest.fixture
def config(tmp_path, monkeypatch):
    """The config above, and the customisation module ``mycustoms`` importable."""
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "mycustoms.py").write_text(CUSTOMS)
    path = tmp_path / "custom_cfg.py"
    path.write_text(CONFIG)
    return str(path)


def _set_size(n):
    def set_size(process):
        process.prod.size = n
        return process

    return set_size


# ------------------------------------------------------------------------------------------ customise
def test_customisations_apply_in_order_callables_then_the_option(config):
    process, _ = load_config(config, [], customise=[_set_size(3), "mycustoms.double"])
    assert process.prod.size == 6  # set to 3, then doubled
    process, _ = load_config(config, [], customise=["mycustoms.double", _set_size(3)])
    assert process.prod.size == 3

    process, opts = load_config(config, ["customise=mycustoms.addAnalyzer,mycustoms.double"],
                                customise=[_set_size(5)])
    assert process.prod.size == 10 and "extra" in process  # kwargs first, then customise=
    assert opts.customise == ["mycustoms.addAnalyzer", "mycustoms.double"]
    assert "extra" not in load_config(config, [])[0]


def test_a_customisation_may_return_another_process(config):
    replacement = cms.Process("REPLACED")
    replacement.source = cms.Source("EmptySource")
    process, _ = load_config(config, ["maxEvents=2"], customise=[lambda p: replacement])
    assert process is replacement and process.maxEventsValue() == 2  # standard options go to the new one


def test_standard_options_win_over_customisations_and_see_what_they_add(config):
    process, _ = load_config(config, ["customise=mycustoms.setMaxEvents", "maxEvents=3"])
    assert process.maxEventsValue() == 3
    process, _ = load_config(config, ["customise=mycustoms.setMaxEvents"])
    assert process.maxEventsValue() == 100
    # address= needs a TritonService: one added by a customisation is there when it is applied
    process, _ = load_config(config, ["customise=mycustoms.addTriton", "address=10.0.0.1", "port=9001"])
    server = process.services_()["TritonService"].servers[0]
    assert (plain(server.address), plain(server.port)) == ("10.0.0.1", 9001)


# ------------------------------------------------------------------------------------------ modifiers=, procModifiers=
def test_modifiers_and_procModifiers_are_chosen_for_the_config_process(config):
    assert load_config(config, [])[0].prod.seed == 0
    process, _ = load_config(config, [], modifiers=[deepMETSonicTriton])
    assert process.prod.seed == 11 and process.modifiers_() == [deepMETSonicTriton]
    process, opts = load_config(config, ["procModifiers=allSonicTriton"])
    assert opts.procModifiers == ["allSonicTriton"]
    assert process.prod.seed == 11  # a member of the chain
    assert process.modifiers_() == [allSonicTriton]
    assert plain(process.services_()["TritonService"].fallback.enable) is True  # enableSonicTriton's hook
    process, _ = load_config(config, ["procModifiers=enableSonicTriton"], modifiers=[deepMETSonicTriton])
    assert process.modifiers_() == [deepMETSonicTriton, enableSonicTriton] and process.prod.seed == 11
    assert load_config(config, [])[0].modifiers_() == []  # nothing stays chosen


def test_procModifiers_takes_a_modifier_of_your_own_as_module_name(config):
    import mycustoms

    process, _ = load_config(config, ["procModifiers=mycustoms.mySonic,deepMETSonicTriton"])
    assert process.modifiers_() == [mycustoms.mySonic, deepMETSonicTriton] and process.prod.seed == 11
    with pytest.raises(ConfigurationError, match=r"no modifier 'mySonik'. Did you mean 'mySonic'"):
        load_config(config, ["procModifiers=mycustoms.mySonik"])
    with pytest.raises(ConfigurationError, match="no modifier 'threshold'"):  # not a Modifier
        load_config(config, ["procModifiers=mycustoms.threshold"])


def test_customisations_see_the_modifiers_chosen_for_the_process(config):
    assert load_config(config, ["customise=mycustoms.sizeIfSonic"])[0].prod.size == 1
    process, _ = load_config(config, ["customise=mycustoms.sizeIfSonic", "procModifiers=enableSonicTriton"])
    assert process.prod.size == 9


def test_help_lists_the_options(config):
    with pytest.raises(OptionsHelp) as err:
        load_config(config, ["help"])
    assert "procModifiers" in str(err.value) and "customise" in str(err.value)


# ------------------------------------------------------------------------------------------ errors
@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["procModifiers=allSonicTrito"],
         r"procModifiers: unknown process modifier 'allSonicTrito'\. Did you mean 'allSonicTriton'.*Valid: "
         r"allSonicTriton, deepMETSonicTriton, .*enableSonicTriton, .*particleTransformerAK4SonicTriton"),
        (["customise=mycustom.double"], r"customise='mycustom.double': no module 'mycustom'\. Did you mean 'mycustoms'"),
        (["customise=mycustoms.doubel"],
         r"module mycustoms has no function 'doubel'\. Did you mean 'double'.*Functions there: addAnalyzer, "
         r"addTriton, broken, double, notAProcess, setMaxEvents, sizeIfSonic$"),
        (["customise=mycustoms.threshold"], r"has no function 'threshold'"),
        (["customise=framework.modifierz.x"],
         r"no module 'framework.modifierz'\. Did you mean 'modifiers'.*Modules in framework: .*modifiers"),
        (["customise=double"], r"customise='double': expected module.function"),
        (["customise=mycustoms.broken"], r"customisation mycustoms.broken failed: ValueError: boom"),
        (["customise=mycustoms.notAProcess"], r"customisation mycustoms.notAProcess returned 42: .*returns the process"),
    ],
)
def test_misspelled_names_and_failing_customisations_are_clear_errors(config, args, match):
    with pytest.raises(ConfigurationError, match=match):
        load_config(config, args)


def test_bad_arguments_of_load_config(config):
    with pytest.raises(ConfigurationError, match="must be cms.Modifier"):
        load_config(config, [], modifiers=["allSonicTriton"])
    with pytest.raises(ConfigurationError, match="neither a function nor"):
        load_config(config, [], customise=[3])


# ------------------------------------------------------------------------------------------ command line
def test_dump_with_procModifiers_prints_the_sonic_config(run_framework):
    with in_repo():
        sonic, _ = load_config(str(MAIN_CONFIG), ["sonic=1"])
        direct, _ = load_config(str(MAIN_CONFIG), [])
    proc = run_framework("dump", MAIN_CONFIG, "procModifiers=allSonicTriton")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == sonic.dumpPython() != direct.dumpPython()
    assert "ParticleTransformerAK4SonicJetTagsProducer" in proc.stdout and "TritonService" in proc.stdout


def test_cli_misspelled_modifier_exits_with_the_valid_names(run_framework, config, tmp_path):
    proc = run_framework("run", config, "procModifiers=allSonicTrito", cwd=tmp_path)
    assert proc.returncode == 2
    assert "Did you mean 'allSonicTriton'" in proc.stderr and "Traceback" not in proc.stderr


def test_compare_modifiers_option_names_the_valid_ones(run_framework, config, tmp_path):
    """``compare --modifiers`` resolves names as procModifiers= does, before running anything."""
    proc = run_framework("compare", config, "--modifiers", "allSonicTrito", "--out", str(tmp_path / "cmp"),
                         cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "compare --modifiers: unknown process modifier 'allSonicTrito'" in proc.stderr
    assert "Did you mean 'allSonicTriton'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "cmp" / "direct.root").exists()
