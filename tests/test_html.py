"""The HTML report, its heatmaps and the class dashboard, checked in a real browser.

Reports for a correct and a buggy submission (softmax over the query axis) and for a spec with a
hidden case are rendered and opened in headless Chromium (Debian's `chromium` package), which
records JavaScript errors and failed resource loads into the DOM (--dump-dom) and takes a
screenshot whose heatmap region must not be blank. Browser tests skip when Chromium is missing.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import numpy as np
import pytest

from attnspec.dashboard import load_class, render_dashboard
from attnspec.loader import build_fixed_inputs, load_spec
from attnspec.reference import numpy_ref
from attnspec.reports.html import render_html
from attnspec.results import GradeResult

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
BUGGY = ROOT / "examples" / "buggy" / "softmax_wrong_axis.py"
CORRECT_TORCH = ROOT / "examples" / "correct_torch.py"
TEST_SPEC = ROOT / "tests" / "specs" / "exercises"
SCHEMA = json.loads((ROOT / "harness" / "schemas" / "report.schema.json").read_text())
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed (apt-get install -y chromium)")
WINDOW = (1200, 2600)

# Records script errors, console errors and failed image loads into the DOM, for --dump-dom.
PROBE = """<script>
window.__problems = [];
window.addEventListener("error", function (e) {
  window.__problems.push(e.target && e.target.tagName ? "failed to load " + e.target.tagName : String(e.message));
}, true);
console.error = function () { window.__problems.push(Array.from(arguments).join(" ")); };
window.addEventListener("load", function () {
  var fig = document.querySelector("figure.heatmaps img");
  var images = Array.from(document.images);
  var b = document.body;
  b.setAttribute("data-problems", JSON.stringify(window.__problems));
  b.setAttribute("data-images", String(images.length));
  b.setAttribute("data-broken", String(images.filter(function (i) { return !(i.complete && i.naturalWidth > 0); }).length));
  if (fig) {
    fig.scrollIntoView();
    var r = fig.getBoundingClientRect();
    b.setAttribute("data-fig", JSON.stringify([r.left, r.top + window.scrollY, r.width, r.height]));
  }
});
</script>"""


def grade_json(tmp: Path, submission: Path, *args: str) -> GradeResult:
    out = tmp / (submission.stem + ".json")
    proc = subprocess.run([sys.executable, "-m", "attnspec", "grade", str(submission), "--format", "json", "-o", str(out), *args], capture_output=True, text=True, timeout=600)
    assert proc.returncode in (0, 1), proc.stderr
    data = json.loads(out.read_text())
    jsonschema.validate(data, SCHEMA)
    return GradeResult.from_dict(data)


@pytest.fixture(scope="module")
def buggy(tmp_path_factory) -> GradeResult:
    return grade_json(tmp_path_factory.mktemp("buggy"), BUGGY, "--exercise", "manual_attention", "--visible-only")


@pytest.fixture(scope="module")
def hidden(tmp_path_factory) -> GradeResult:
    return grade_json(tmp_path_factory.mktemp("hidden"), BUGGY, "--spec", str(TEST_SPEC), "--no-builtin", "--exercise", "manual_attention")


def browse(page: Path, tmp: Path) -> tuple[str, np.ndarray]:
    """Open `page` (with the error probe) in headless Chromium: its DOM after load, and a screenshot."""
    probed = tmp / ("probed-" + page.name)
    probed.write_text(page.read_text(encoding="utf-8").replace("<head>", "<head>\n" + PROBE, 1), encoding="utf-8")
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--force-device-scale-factor=1", f"--window-size={WINDOW[0]},{WINDOW[1]}"]
    dom = subprocess.run([*flags, "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = tmp / (page.stem + ".png")
    run = subprocess.run([*flags, "--enable-logging=stderr", "--v=0", f"--screenshot={shot}", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    assert not [line for line in run.stderr.splitlines() if "CONSOLE" in line and ("Uncaught" in line or "rror" in line)]
    return dom.stdout, png_pixels(shot.read_bytes())


def png_pixels(data: bytes) -> np.ndarray:
    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(data), format="png")[..., :3]


def body_attr(dom: str, name: str) -> str:
    found = re.search(rf'<body[^>]*\s{name}="([^"]*)"', dom)
    assert found, f"the page's load handler did not run ({name} missing): the page did not load"
    return found.group(1).replace("&quot;", '"')


def embedded_images(html: str) -> list[np.ndarray]:
    return [png_pixels(base64.b64decode(b64)) for b64 in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)]


# ---------------------------------------------------------------- the probes, on trusted code


def probe(exercise: str, dims: dict, mask: str, **knobs):
    """Run the pattern probe for `exercise` against a reference variant, in process."""
    from functools import partial

    from attnspec.inputs import generate_inputs
    from attnspec.patterns import _PROBES
    from attnspec.reference import variants
    from attnspec.runner import InProcessRunner
    from attnspec.specmodel import InputSpec

    functions = {"manual_attention": variants.attention, "multi_head_attention": variants.multi_head_attention, "transformer_block": variants.transformer_block}
    runner = InProcessRunner({exercise: partial(functions[exercise], **knobs)})
    inputs = generate_inputs(exercise, InputSpec(shapes=dims, mask=mask, seed=5), dims, seed=5)
    return _PROBES[exercise](runner, inputs, "numpy", "float64")


@pytest.mark.parametrize(
    "exercise,dims",
    [
        ("manual_attention", {"batch": 2, "n_heads": 3, "seq_q": 5, "seq_k": 5, "d_head": 4, "d_v": 3}),
        ("multi_head_attention", {"batch": 2, "seq": 5, "d_model": 8, "n_heads": 4}),  # seq > d_head: two calls per head
        ("transformer_block", {"batch": 2, "seq": 4, "d_model": 6, "n_heads": 2, "d_ff": 5}),
    ],
)
def test_probe_reads_back_the_reference_exactly_and_a_query_axis_softmax_differently(exercise, dims):
    right = probe(exercise, dims, "causal")
    assert right["problem"] is None and right["panels"]
    for panel in right["panels"]:
        assert np.allclose(np.array(panel["got"], dtype=float), np.array(panel["expected"]), atol=1e-9)
    knobs = {"manual_attention": {"softmax_axis": "queries"}, "multi_head_attention": {"attention": {"softmax_axis": "queries"}}, "transformer_block": {"mha": {"attention": {"softmax_axis": "queries"}}}}[exercise]
    wrong = probe(exercise, dims, "causal", **knobs)
    assert any(not np.allclose(np.array(p["got"], dtype=float), np.array(p["expected"]), atol=1e-6) for p in wrong["panels"])
    if right["kind"] == "attention":
        got = np.array(wrong["panels"][0]["got"], dtype=float)
        assert np.allclose(got.sum(axis=0), 1.0)  # the learner's weights sum to one over the queries
        assert right["panels"][0]["blocked"] is not None


def test_mha_with_more_positions_than_features_shows_the_outputs():
    shown = probe("multi_head_attention", {"batch": 2, "seq": 6, "d_model": 4, "n_heads": 2}, "none")
    assert shown["kind"] == "output" and shown["columns"] == "feature"


# ---------------------------------------------------------------- no browser needed


def test_buggy_report_opens_with_the_verdict_and_the_named_mistake(buggy):
    html = render_html(buggy)
    verdict, mistakes, failures = html.index('id="verdict"'), html.index('id="mistakes"'), html.index('id="failures"')
    assert verdict < mistakes < failures
    assert "softmax over the query axis" in html[mistakes:failures]
    assert f"{buggy.score:g} / {buggy.max_score:g} points" in html
    assert "<script" not in html and "http://" not in html.replace("http://www.w3.org", "") and "https://" not in html


def test_failing_cases_carry_expected_and_learner_patterns(buggy):
    with_patterns = [c for c in buggy.cases if c.patterns]
    assert with_patterns, "no failing case got attention patterns"
    case = with_patterns[0]
    panel = case.patterns["panels"][0]
    expected, got = np.array(panel["expected"]), np.array(panel["got"], dtype=float)
    assert np.allclose(expected.sum(axis=-1), 1.0)  # the reference normalises over keys
    assert not np.allclose(got.sum(axis=-1), 1.0)  # the learner's softmax runs over the queries
    assert np.allclose(got.sum(axis=-2), 1.0)
    assert all(c.outcome != "passed" for c in with_patterns)


def test_masked_case_marks_blocked_cells_and_learner_weights_there(buggy):
    masked = [c for c in buggy.cases if c.patterns and any(p["blocked"] for p in c.patterns["panels"])]
    assert masked
    panel = next(p for p in masked[0].patterns["panels"] if p["blocked"])
    blocked = np.array(panel["blocked"])
    assert blocked.any() and not blocked.all()
    assert np.allclose(np.array(panel["expected"])[blocked], 0.0)


def test_heatmap_images_are_embedded_and_not_blank(buggy):
    html = render_html(buggy)
    images = embedded_images(html)
    figures = html.count('<figure class="heatmaps">')
    assert figures >= 1 and len(images) == figures
    for pixels in images:
        assert pixels.std() > 0.05
        assert len(np.unique((pixels * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 20
    assert 'alt="Heatmaps of the attention weights' in html
    assert "largest differences" in html


def test_patterns_round_trip_through_json(buggy):
    data = buggy.to_dict()
    again = GradeResult.from_dict(json.loads(json.dumps(data)))
    assert [c.patterns for c in again.cases] == [c.patterns for c in buggy.cases]
    jsonschema.validate(data, SCHEMA)


def test_hidden_case_reveals_no_inputs_or_values(hidden):
    case = next(c for c in hidden.cases if c.case_id == "ex.ma.hidden")
    assert case.outcome == "failed" and case.patterns is None
    html = render_html(hidden)
    section = html[html.index('id="case-ex-ma-hidden"') :]
    section = section[: section.index("</section>")]
    assert "hidden case: inputs and values are not shown" in section
    assert "<img" not in section and "seed" not in section and "mask=" not in section and "expected vs got" not in section
    spec = load_spec([str(TEST_SPEC)], builtin=False)
    inputs = build_fixed_inputs(next(c for c in spec.cases if c.id == "ex.ma.hidden"))
    a = inputs.args
    values = [a["Q"], a["K"], a["V"], a["mask"], numpy_ref.manual_attention(a["Q"], a["K"], a["V"], a["mask"]), numpy_ref.attention_pattern(a["Q"], a["K"], a["mask"])]
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html)
    leaked = [f for v in values for x in np.ravel(v) if np.isfinite(x) and abs(x) > 1e-3 for f in {f"{x:.6g}", f"{x:.4g}"} if "." in f and len(f) >= 5 and f in text]
    assert not leaked


def test_concise_fragment_keeps_the_first_failing_case_per_property(buggy):
    fragment = render_html(buggy, fragment=True, concise=True)
    assert not fragment.lstrip().startswith("<!DOCTYPE") and 'class="attnspec-report"' in fragment
    failing = [c for c in buggy.cases if c.outcome in ("failed", "error")]
    properties = {c.property for c in failing}
    assert fragment.count('<section class="case"') == len(properties) < len(failing)
    assert "Concise view" in fragment


def test_html_format_and_output_dir_write_one_page_per_submission(tmp_path):
    subs = tmp_path / "subs"
    subs.mkdir()
    shutil.copy(BUGGY, subs / "a_buggy.py")
    shutil.copy(ROOT / "examples" / "correct_numpy.py", subs / "b_correct.py")
    out = tmp_path / "pages"
    proc = subprocess.run(
        [sys.executable, "-m", "attnspec", "grade", str(subs), "--spec", str(TEST_SPEC), "--no-builtin", "--format", "html", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 1, proc.stderr
    pages = sorted(p.name for p in out.iterdir())
    assert pages == ["a_buggy.html", "b_correct.html"]
    assert "Every graded case passed." in (out / "b_correct.html").read_text()
    assert "softmax over the query axis" in (out / "a_buggy.html").read_text()


def test_dashboard_summarises_a_folder_of_json_reports(tmp_path, buggy, hidden):
    for name, result in (("one", buggy), ("two", hidden)):
        (tmp_path / f"{name}.json").write_text(json.dumps(result.to_dict()))
    (tmp_path / "results.json").write_text(json.dumps({"tests": []}))  # a Gradescope file: skipped
    run = load_class(tmp_path)
    assert sorted(run.reports) == ["one", "two"] and run.skipped == ["results.json"]
    html = render_dashboard(run, tmp_path)
    assert "Score distribution" in html and "Pass rate per case" in html
    assert re.search(r"softmax over the query axis</strong>[^<]*<span[^>]*>[^<]*</span>:\s*2 submissions", html, re.S)
    rate = re.search(r"<td[^>]*>ma.reference.fixed</td><td>manual_attention</td><td class=\"num\">(\d+) / (\d+)</td>", html)
    assert rate and rate.groups() == ("0", "1")
    assert len(embedded_images(html)) >= 2  # the histogram and an example heatmap


# ---------------------------------------------------------------- in a real browser


@needs_chromium
def test_buggy_report_in_chromium_shows_nonblank_heatmaps(buggy, tmp_path):
    page = tmp_path / "buggy.html"
    page.write_text(render_html(buggy), encoding="utf-8")
    dom, shot = browse(page, tmp_path)
    assert json.loads(body_attr(dom, "data-problems")) == []
    assert int(body_attr(dom, "data-images")) >= 1 and body_attr(dom, "data-broken") == "0"
    left, top, width, height = (int(round(v)) for v in json.loads(body_attr(dom, "data-fig")))
    assert top + min(height, 200) <= WINDOW[1], "the first heatmap is below the screenshot"
    region = shot[top : min(top + height, WINDOW[1]), left : left + width]
    assert region.size and region.std() > 0.05
    assert len(np.unique((region * 255).astype(np.uint8).reshape(-1, 3), axis=0)) > 50


@needs_chromium
def test_correct_report_in_chromium_has_no_errors_and_no_heatmaps(tmp_path):
    pytest.importorskip("torch")
    result = grade_json(tmp_path, CORRECT_TORCH, "--exercise", "manual_attention", "--visible-only")
    assert result.all_passed
    page = tmp_path / "correct.html"
    page.write_text(render_html(result), encoding="utf-8")
    dom, shot = browse(page, tmp_path)
    assert json.loads(body_attr(dom, "data-problems")) == []
    assert body_attr(dom, "data-images") == "0"
    assert "Every graded case passed." in dom
    assert shot.std() > 0.01  # the page rendered something


@needs_chromium
def test_hidden_report_in_chromium_loads_cleanly(hidden, tmp_path):
    page = tmp_path / "hidden.html"
    page.write_text(render_html(hidden), encoding="utf-8")
    dom, _ = browse(page, tmp_path)
    assert json.loads(body_attr(dom, "data-problems")) == []
    assert body_attr(dom, "data-broken") == "0"
    assert "hidden case: inputs and values are not shown" in dom


def test_html_without_the_extra_fails_before_grading_and_names_it():
    code = "import sys; sys.modules['jinja2'] = None; from attnspec.cli import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.run([sys.executable, "-c", code, "grade", str(BUGGY), "--format", "html"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "pip install 'attnspec[html]'" in proc.stderr and proc.stdout == ""
