"""Cost of the lumi transitions and of a DQM module in the event loop (issue 10): events/s of the main job
(configs/miniaod_cfg.py, direct) on the same 1000 events with and without a DQMHistogrammer (the DQM config's three
elements: METSig, the jet eta-phi map, PF vs Puppi MET; producers/dqm/cff.py), with lumi sections of 100 and of 10 events; plus the DQM job alone
(configs/dqm_cfg.py); and the scoring speed of the three NMF models (METSig, 51 bins + flow; the jet occupancy map,
1200 bins; PF vs Puppi MET, 50 bins + flow): lumi sections scored per second, one section per call as the job does, in-process vs on a local MLServer over
HTTP and gRPC (the sections of the bundled sample, read back from the DQM job, repeated to --sections).

    python benchmarks/bench_dqm.py --out benchmarks/results/dqm.json
    python benchmarks/bench_dqm.py --scoring-only      # the scoring rows only, the event-loop rows kept from --out

Options: [--events 1000] [--repeat 3] [--per-lumi 100 10]. The samples are generated (seed 1, all branches and
MET_significance) into a temporary directory, one per lumi size: the same events, numbered into lumis
differently. Runs are interleaved round after round (every cell once per round); the best of the rounds is kept.
Writes JSON and a Markdown table next to it. Compare ratios, not absolute numbers, across machines.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import resource
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def add_dqm(process):
    """customise: the DQM module on a Path of its own."""
    import framework.config as cms
    from producers.dqm import cff

    cff.add(process, "dqmHistograms", cff.met_significance(), cff.jet_occupancy(), cff.met_minus_puppi())
    process.dqmPath = cms.Path(process.dqmHistograms)
    return process


def cpu_s() -> float:
    """User + system CPU seconds of this process (all threads): steadier than wall time on a busy machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def one_run(config: str, args: list[str], dqm: bool) -> dict:
    from framework.runner import run_config

    c0 = cpu_s()
    report, _ = run_config(config, args, progress=False, customise=[add_dqm] if dqm else [])
    cpu = cpu_s() - c0
    t = report.timing.to_dict()
    fill = t["modules"].get("dqmHistograms", {})
    return {"events": report.processed, "lumis": report.lumis, "wall_s": t["wall_s"],
            "events_per_s": t["events_per_s"], "cpu_ms_per_event": 1e3 * cpu / max(1, report.processed),
            "dqm_module": fill}


MODELS = ("dqmNMF", "dqmNMFJetOcc", "dqmNMFMETPuppi")  # the scorers of configs/dqm_cfg.py (data/models/<name>)


def scoring_speed(n_sections: int, repeat: int) -> dict:
    """Sections/s of each model, direct vs MLServer (HTTP, gRPC), one section per call, best of *repeat*."""
    from framework.runner import run_config
    from framework.server.mlserver import LocalMLServer
    from framework.sonic.client import TritonClient
    from producers.dqm.read import me_matrix, read_lumi_histograms
    from producers.dqm_nmf.model import Threshold, as_model_input, load, score

    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "dqm.root")
        run_config("configs/dqm_cfg.py", ["nmfModel=", f"outputFile={out}"], progress=False)
        histograms = read_lumi_histograms(out)
    infos = {name: Threshold.read(os.path.join("data", "models", name)) for name in MODELS}
    rows = {name: me_matrix(histograms, info.element, flow=info.flow)[1] for name, info in infos.items()}
    results: dict[str, dict] = {}
    with LocalMLServer([os.path.join("data", "models", name) for name in MODELS]) as server:
        clients = {(name, protocol): TritonClient({"modelName": name, "mode": "Sync", "allowedTries": 2}, protocol=protocol,
                                                  server=server.http_address if protocol == "http"
                                                  else server.grpc_address)
                   for name in MODELS for protocol in ("http", "grpc")}
        for (_, protocol), client in clients.items():
            client.connect()
            client.transport.json = protocol == "http"  # MLServer cannot read Triton's binary tensors
        for name, matrix in rows.items():
            x = [as_model_input(matrix[i % len(matrix)]) for i in range(n_sections)]
            model = load(os.path.join("data", "models", name, "model.joblib"))

            def direct(x=x, model=model) -> None:
                for row in x:
                    score(model, row)

            def served(client, x=x) -> None:
                for row in x:
                    client.reset()
                    client.input["input_0"].toServer(row)
                    client.evaluate()
                    client.output["output_1"].fromServer()

            cells = {"direct": direct, "MLServer HTTP": lambda c=clients[(name, "http")]: served(c),
                     "MLServer gRPC": lambda c=clients[(name, "grpc")]: served(c)}
            times: dict[str, list[float]] = {k: [] for k in cells}
            for _ in range(repeat):  # interleaved rounds
                for how, fn in cells.items():
                    t0 = time.perf_counter()
                    fn()
                    times[how].append(time.perf_counter() - t0)
            results[name] = {"bins": int(matrix.shape[1]), "sections": n_sections,
                             **{how: {"sections_per_s": n_sections / min(t), "all_s": [round(v, 3) for v in t]}
                                for how, t in times.items()}}
            print(f"{name}: " + ", ".join(f"{how} {results[name][how]['sections_per_s']:.0f}/s" for how in cells),
                  flush=True)
        for client in clients.values():
            client.close()
    return results


def scoring_lines(scoring: dict, repeat: int) -> list[str]:
    """The Markdown table of :func:`scoring_speed`'s results."""
    lines = ["", f"NMF scoring speed: lumi sections scored per second, one section per call (as the job), best of "
             f"{repeat} (interleaved); MLServer local (parallel_workers 0), SONIC client in its V2-only mode", "",
             "| model | bins | sections | direct /s | MLServer HTTP /s | MLServer gRPC /s | direct / gRPC |",
             "|---|---|---|---|---|---|---|"]
    for name, r in scoring.items():
        d, h, g = (r[k]["sections_per_s"] for k in ("direct", "MLServer HTTP", "MLServer gRPC"))
        lines.append(f"| {name} | {r['bins']} | {r['sections']} | {d:.0f} | {h:.0f} | {g:.0f} | {d / g:.1f}x |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "dqm.json"))
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--per-lumi", type=int, nargs="+", default=[100, 10])
    parser.add_argument("--sections", type=int, default=1040, help="lumi sections scored per cell [1040]")
    parser.add_argument("--scoring-only", action="store_true", help="only the scoring rows (event-loop rows: --out's)")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    os.chdir(REPO)
    if ns.scoring_only:
        with open(ns.out) as f:
            doc = json.load(f)
        doc["scoring"] = scoring_speed(ns.sections, ns.repeat)
        doc["scoring_settings"] = {"command": "python benchmarks/bench_dqm.py " + " ".join(argv or sys.argv[1:]),
                                   "time": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average_1min": os.getloadavg()[0]}
        write(doc, ns.out, event_loop_lines(doc) + scoring_lines(doc["scoring"], ns.repeat))
        return 0
    from framework.samples import generate

    results: dict[str, list[dict]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        samples = {}
        for epl in ns.per_lumi:
            samples[epl] = os.path.join(tmp, f"sample_{epl}.root")
            generate(samples[epl], ns.events, 1, events_per_lumi=epl, branches=["*"])
        out = os.path.join(tmp, "out.root")
        cells = [(f"main, {epl} events/lumi{', + DQM' if dqm else ''}", "configs/miniaod_cfg.py", epl, dqm)
                 for epl in ns.per_lumi for dqm in (False, True)]
        cells += [(f"DQM job alone, {epl} events/lumi", "configs/dqm_cfg.py", epl, False) for epl in ns.per_lumi]
        for r in range(ns.repeat):
            for name, config, epl, dqm in cells:
                args = [f"maxEvents={ns.events}", f"inputFiles={samples[epl]}", f"outputFile={out}", "wantSummary=0"]
                row = one_run(config, args, dqm)
                results.setdefault(name, []).append(row)
                print(f"round {r + 1}: {name}: {row['events_per_s']:.1f} events/s", flush=True)
    best = {name: max(rows, key=lambda x: x["events_per_s"]) for name, rows in results.items()}
    least_cpu = {name: min(x["cpu_ms_per_event"] for x in rows) for name, rows in results.items()}
    doc = {
        "machine": {"cores": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "load_average_1min_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)]},
        "events": ns.events, "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "settings": {"command": "python benchmarks/bench_dqm.py " + " ".join(argv or sys.argv[1:]),
                     "repeat": ns.repeat, "per_lumi": ns.per_lumi,
                     "input": f"{ns.events} generated events (seed 1, --branches '*')"},
        "best": best,
        "least_cpu_ms_per_event": least_cpu,
        "all_events_per_s": {name: [round(x["events_per_s"], 2) for x in rows] for name, rows in results.items()},
    }
    doc["scoring"] = scoring_speed(ns.sections, ns.repeat)
    write(doc, ns.out, event_loop_lines(doc) + scoring_lines(doc["scoring"], ns.repeat))
    return 0


def write(doc: dict, out: str, lines: list[str]) -> None:
    """The JSON *doc* at *out* and the Markdown *lines* next to it."""
    with open(out, "w") as f:
        json.dump(doc, f, indent=2)
    with open(os.path.splitext(out)[0] + ".md", "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def event_loop_lines(doc: dict) -> list[str]:
    """The Markdown table of the event-loop rows of *doc*."""
    best, least_cpu = doc["best"], doc["least_cpu_ms_per_event"]
    load = doc["machine"]["load_average_1min_before_after"]
    lines = [f"{doc['events']} generated events, best of {doc['settings']['repeat']} (interleaved), "
             f"{doc['machine']['cores']} cores, load average "
             f"{load[0]} before / {load[1]} after (other work on the machine makes the events/s noisy; the DQM "
             "module's own times are the steadier measure)", "",
             "| job | lumis | events/s | vs main job, same lumis | CPU ms/event (least; whole run_config) | "
             "vs main job | DQM module: analyze ms, fill ms (at lumi ends) |",
             "|---|---|---|---|---|---|---|"]
    for name, row in best.items():
        epl = int(name.split(", ")[1].split()[0])
        ref = best[f"main, {epl} events/lumi"]["events_per_s"]
        m = row["dqm_module"]
        dqm = f"{1e3 * m['produce_s']:.1f}, {1e3 * m['parts_s'].get('fill', 0.0):.1f}" if m else ""
        main = name.startswith("main")
        ratio = f"{row['events_per_s'] / ref:.3f}x" if main else "-"
        cpu_ratio = f"{least_cpu[name] / least_cpu[f'main, {epl} events/lumi']:.3f}x" if main else "-"
        lines.append(f"| {name} | {row['lumis']} | {row['events_per_s']:.1f} | {ratio} | {least_cpu[name]:.2f} | "
                     f"{cpu_ratio} | {dqm} |")
    return lines


if __name__ == "__main__":
    raise SystemExit(main())
