"""中文 / English through Streamlit's AppTest (issue 13): every page in Chinese, the switch, links, uploads.

- Every page × a few sample models with ``lang=zh``: no exception and no English sentence (no run of four or
  more English words outside code, formulas, model, layer and file names: ``tests/i18n_support.py``). The
  same page is opened in English first, in this process: a cached figure, table or text built for the English
  session and handed to the Chinese one shows up here as leftover English. And the other way round: a page
  opened in Chinese first and then in English (other settings, so nothing was cached yet) shows no Chinese.
- The language switch changes the language and nothing else (model, layer, bits, scheme … and page controls).
- Links: ``lang=zh`` opens Chinese; no ``lang`` opens English; ``lang=xx`` opens English and the link notice
  says so.
- An uploaded file in Chinese: the demo file on the Your model page, then as the sidebar's model.
- The Glossary page: every term of the project's terminology in both columns, in both languages.

A failure names the page, the model and each English run with where it is (``main/metric#key.label: …``), so
the owner of the page can find the string.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from urllib.parse import parse_qsl, urlparse

import pytest
from i18n_support import element_texts, english_leftovers, markdown_problems
from streamlit.testing.v1 import AppTest

import sample_models
from quantlib.model import list_layers
from ui import controls
from ui.compute import upload
from ui.sources import UPLOAD_MODEL

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "app.py")
TIMEOUT = 600  # seconds per script run: MiniLM's first whole-model run on a busy 2-core machine
#: Page file -> whether a session's first run can be that page (AppTest finds a page by file name before the
#: first run, which works where the file name is the page's url_path; the others are reached from the start).
PAGES = {
    "tensor_explorer": True,
    "error_curves": False,
    "output_drift": False,
    "sensitivity": True,
    "size_speed": False,
    "qat": True,
    "algorithms": True,
    "walkthrough": True,
    "your_model": False,
}
#: A small MLP, a CNN and the transformer (the largest texts: 37 layers with long names).
MODELS = ["digits-mlp", "digits-cnn", "minilm"]
CJK = re.compile(r"[\u3400-\u9fff\u3000-\u303f\uff00-\uffef]")
MAX_SHOWN = 40


def open_page(page: str, **params: str) -> AppTest:
    """A fresh session (a browser tab) opened on ``page`` with ``params`` in its link."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params.update(params)
    if PAGES.get(page, True):
        at.switch_page(f"app_pages/{page}.py").run()
    else:
        at.run()
        at.switch_page(f"app_pages/{page}.py").run()
    return at


@functools.cache
def allowed_names() -> tuple[str, ...]:
    """Names that stay as they are in every language: sample models (their names; their titles when the code
    does not mark them for translation), their layers, the upload's entry, the demo file and its tensors."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("qe_tools_i18n_app", REPO / "tools" / "i18n.py")
    tools = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tools)
    msgids = {m.id if isinstance(m.id, str) else m.id[0] for m in tools.extract() if m.id}
    names: set[str] = {UPLOAD_MODEL, upload.DEMO_FILENAME, *upload.demo_state_dict()}
    for name in sample_models.names():
        sm = sample_models.load(name)
        names.add(name)
        if sm.title not in msgids:
            names.add(sm.title)
        names.update(layer.name for layer in list_layers(sm.model))
        names.update(controls.layer_token(layer.name) for layer in list_layers(sm.model))
    return tuple(sorted(names, key=len, reverse=True))


def failures(at: AppTest) -> list[str]:
    return [f"exception: {e.value}" for e in at.exception]


def report(what: str, lines: list[str]) -> str:
    shown = lines[:MAX_SHOWN]
    more = f"\n  … and {len(lines) - MAX_SHOWN} more" if len(lines) > MAX_SHOWN else ""
    return f"{what}: {len(lines)} found\n  " + "\n  ".join(shown) + more


def chinese_leftovers(at: AppTest) -> list[str]:
    """Chinese text in an English session, apart from the language switch itself (it names both languages)."""
    return [
        f"{where}: {text[:100]}"
        for where, text in element_texts(at)
        if CJK.search(text) and "#lang." not in where
    ]


def language(at: AppTest) -> str:
    return at.radio(key="lang").value


# --- every page in Chinese ----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
@pytest.mark.parametrize("model", MODELS)
def test_every_page_in_chinese_shows_no_english_sentence(model, page):
    english = open_page(page, model=model)
    assert not failures(english), f"{page} × {model} in English: {failures(english)}"
    assert language(english) == "en"

    chinese = open_page(page, model=model, lang="zh")
    assert not failures(chinese), f"{page} × {model} in Chinese: {failures(chinese)}"
    assert language(chinese) == "zh"
    left = english_leftovers(chinese, allowed_names())
    bold = markdown_problems(chinese)
    assert not left and not bold, "\n".join(
        [report(f"{page} × {model}, lang=zh (after the same page in English): English runs", left)] * bool(left)
        + [report(f"{page} × {model}, lang=zh: bold that shows its ** (put the full-width punctuation outside "
                  "the ** or a space after them)", bold)] * bool(bold)
    )


@pytest.mark.slow
@pytest.mark.parametrize("page", list(PAGES))
def test_a_page_filled_in_chinese_first_shows_no_chinese_in_english(page):
    """Settings nobody opened yet (5 bits, asymmetric): the Chinese session fills the caches, English reads."""
    params = {"model": "digits-mlp", "bits": "5", "scheme": "asymmetric", "layer": "fc2"}
    chinese = open_page(page, **params, lang="zh")
    assert not failures(chinese), f"{page} in Chinese: {failures(chinese)}"
    english = open_page(page, **params)
    assert not failures(english), f"{page} in English: {failures(english)}"
    left = chinese_leftovers(english)
    assert not left, report(f"{page} × digits-mlp in English after Chinese: Chinese texts", left)


# --- the switch and links -----------------------------------------------------------------------------------------

SWITCH_CASES = {
    "tensor_explorer": {"model": "digits-mlp", "layer": "fc2", "bits": "3", "scheme": "asymmetric",
                        "granularity": "channel", "calibration": "percentile", "percentile": "99.9",
                        "rounding": "stochastic", "log": "true"},
    "walkthrough": {"model": "tiny-linear", "bits": "3", "rounding": "truncate", "x": "1.1", "lo": "-0.25",
                    "hi": "1.25"},
}


def widget_values(at: AppTest, keys: tuple[str, ...] | list[str]) -> dict[str, object]:
    found = {}
    for node in at._tree:
        key = getattr(node, "key", None)
        if key in keys and hasattr(node, "value") and getattr(node, "id", None):
            found[key] = node.value
    return found


def settings_keys(page: str) -> list[str]:
    return [k for k in controls.PARAMS if k != "lang"] + [k for k in SWITCH_CASES[page] if k in controls.PAGE_PARAMS]


def share_link(at: AppTest) -> dict[str, str]:
    """The parameters of the sidebar's "share this view" link (AppTest does not write bound widgets back into
    ``at.query_params``; the browser's address bar holds the same state)."""
    link = next(c.value for c in at.code if "model=" in c.value)
    return dict(parse_qsl(urlparse(link).query))


def query_without_lang(at: AppTest) -> dict[str, str]:
    return {k: v for k, v in share_link(at).items() if k != "lang"}


@pytest.mark.parametrize("page", list(SWITCH_CASES))
def test_switching_the_language_keeps_every_other_setting(page):
    at = open_page(page, **SWITCH_CASES[page])
    assert not failures(at) and language(at) == "en"
    keys = settings_keys(page)
    before, link_before = widget_values(at, keys), query_without_lang(at)
    for key, value in SWITCH_CASES[page].items():
        assert link_before.get(key) == value, (key, link_before)
    english_title = at.title[0].value

    at.radio(key="lang").set_value("zh").run()
    assert not failures(at)
    assert language(at) == "zh" and share_link(at).get("lang") == "zh", "the share link carries the language"
    assert widget_values(at, keys) == before, "switching to 中文 changed a setting"
    assert query_without_lang(at) == link_before, "switching to 中文 changed the link's other parameters"
    assert ("navigation.page", "术语表") in element_texts(at), "the page list is Chinese"

    at.radio(key="lang").set_value("en").run()
    assert not failures(at) and language(at) == "en"
    assert widget_values(at, keys) == before, "switching back to English changed a setting"
    assert query_without_lang(at) == link_before
    assert at.title[0].value == english_title


def test_a_link_with_lang_zh_opens_in_chinese_without_a_notice():
    at = open_page("tensor_explorer", model="digits-mlp", lang="zh")
    assert not failures(at)
    assert language(at) == "zh"
    assert not at.warning, [w.value for w in at.warning]
    assert ("navigation.page", "术语表") in element_texts(at)


def test_a_link_without_lang_opens_in_english():
    at = open_page("tensor_explorer", model="digits-mlp")
    assert not failures(at)
    assert language(at) == "en"
    assert at.title[0].value == "🔬 Tensor explorer"
    assert not at.warning
    assert not chinese_leftovers(at), report("English page: Chinese texts", chinese_leftovers(at))


@pytest.mark.parametrize("value", ["xx", "fr", "", "<b>zh</b>"])
def test_a_link_with_an_unknown_lang_falls_back_to_english_and_says_so(value):
    at = open_page("tensor_explorer", model="digits-mlp", lang=value)
    assert not failures(at)
    assert language(at) == "en"
    assert at.title[0].value == "🔬 Tensor explorer"
    assert "lang" not in share_link(at) or share_link(at)["lang"] == "en"
    if value:
        notice = " ".join(w.value for w in at.warning)
        assert "`lang=" in notice and "`en`" in notice, notice


def test_a_chinese_link_with_bad_values_explains_them_in_chinese():
    at = open_page("tensor_explorer", model="digits-mlp", lang="zh", bits="99", foo="bar", layer="nope")
    assert not failures(at) and language(at) == "zh"
    notice = " ".join(w.value for w in at.warning)
    assert "`bits=99`" in notice and "`foo=bar`" in notice and "`layer=nope`" in notice, notice
    assert CJK.search(notice), notice
    left = [line for line in english_leftovers(at, allowed_names()) if "/warning" in line or "#_qe_dismiss" in line]
    assert not left, report("the link notice in Chinese: English runs", left)


@pytest.mark.parametrize("value", ["zh-CN", "zh_Hans", "ZH"])
def test_a_link_with_a_regional_chinese_code_opens_in_chinese(value):
    """``ui.i18n.normalize`` reads ``zh-CN`` / ``zh_Hans`` as Chinese: a link spelled so opens in Chinese."""
    at = open_page("tensor_explorer", model="digits-mlp", lang=value)
    assert not failures(at)
    assert language(at) == "zh"
    assert ("navigation.page", "术语表") in element_texts(at)


# --- an uploaded file in Chinese ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_an_uploaded_file_in_chinese_on_its_page_and_as_the_sidebar_model():
    at = open_page("your_model", lang="zh")
    assert not failures(at)
    left = english_leftovers(at, allowed_names())
    assert not left, report("your_model without a file, lang=zh: English runs", left)

    at.button(key="_qe_upload_demo").click().run()
    assert not failures(at), failures(at)
    left = english_leftovers(at, allowed_names())
    assert not left, report("your_model with the demo file, lang=zh: English runs", left)

    bold = markdown_problems(at)
    assert not bold, report("your_model with the demo file, lang=zh: bold that shows its **", bold)

    at.button(key="_qe_upload_open").click().run()
    assert not failures(at) and at.selectbox(key="model").value == UPLOAD_MODEL
    for page in ("tensor_explorer", "error_curves", "size_speed", "walkthrough", "output_drift"):
        at.switch_page(f"app_pages/{page}.py").run()
        assert not failures(at), (page, failures(at))
        left = english_leftovers(at, allowed_names())
        assert not left, report(f"{page} × the demo file ({UPLOAD_MODEL}), lang=zh: English runs", left)


# --- the glossary -------------------------------------------------------------------------------------------------

#: The project's terminology (issue 13's brief): every pair must be on the Glossary page, in both languages.
TERMS = [
    ("量化", "quantization"), ("训练后量化", "post-training quantization"), ("量化感知训练", "quantization-aware training"),
    ("缩放因子", "scale"), ("零点", "zero point"), ("位宽", "bit width"), ("对称量化", "symmetric quantization"),
    ("非对称量化", "asymmetric quantization"), ("权重量化", "weight quantization"),
    ("激活量化", "activation quantization"), ("全量化", "full quantization"), ("线性量化", "linear quantization"),
    ("均方误差", "mean squared error"), ("四舍五入", "round to nearest"), ("截断", "truncation"),
    ("随机舍入", "stochastic rounding"), ("反量化", "dequantize"), ("权重", "weights"), ("激活值", "activations"),
    ("层", "layer"), ("张量", "tensor"), ("通道", "channel"), ("粒度", "granularity"), ("逐张量", "per-tensor"),
    ("逐通道", "per-channel"), ("逐组", "per-group"), ("组大小", "group size"), ("校准", "calibration"),
    ("范围", "range"), ("百分位", "percentile"), ("裁剪", "clipping"), ("裁剪比例", "clip ratio"),
    ("离群值", "outlier"), ("直方图", "histogram"), ("量化网格", "grid"), ("量化级", "levels"),
    ("整数码", "integer codes"), ("数值格式", "number format"), ("信号与量化噪声比", "signal-to-quantization-noise ratio"),
    ("误差", "error"), ("输出漂移", "output drift"), ("任务指标", "task metric"), ("准确率", "accuracy"),
    ("敏感度", "sensitivity"), ("混合精度", "mixed precision"), ("预算", "budget"), ("模型大小", "model size"),
    ("压缩比", "compression ratio"), ("延迟", "latency"), ("速度", "speed"), ("能耗", "energy"),
    ("嵌入表", "embedding table"), ("校准输入", "calibration inputs"), ("训练轮数", "epoch"),
    ("学习率", "learning rate"), ("导出", "export"), ("上传", "upload"), ("分享链接", "share link"), ("任务", "job"),
    ("样例模型", "sample model"), ("浮点", "float"), ("整数", "integer"), ("试一试", "Try this"),
]


def glossary_rows(at: AppTest) -> list[list[str]]:
    """The rows of the page's term tables (markdown tables: English | 中文 | definition | formula)."""
    rows = []
    for md in at.markdown:
        for line in md.value.splitlines():
            if line.startswith("| **"):
                cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line)[1:-1]]
                rows.append([c.strip("*") for c in cells])
    return rows


def glossary_cells(at: AppTest) -> tuple[set[str], set[str]]:
    """The English and Chinese terms the page lists."""
    rows = glossary_rows(at)
    return {r[0] for r in rows}, {r[1] for r in rows}


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_glossary_lists_every_term_in_both_languages(lang):
    at = open_page("glossary", model="digits-mlp", lang=lang)
    assert not failures(at), failures(at)
    page_text = "\n".join(text for _where, text in element_texts(at))
    english, chinese = glossary_cells(at)
    assert len(english) >= len(TERMS)
    missing = [
        f"{zh} / {en}"
        for zh, en in TERMS
        if not any(zh == c or c.startswith(zh + "（") or c.startswith(zh + " ") for c in chinese)
        or not any(en.lower() == e.lower() or e.lower().startswith(en.lower() + " (") for e in english)
    ]
    assert not missing, f"terms missing from the glossary ({lang}): {missing}"
    assert "PTQ" in page_text and "QAT" in page_text and "SQNR" in page_text and "MSE" in page_text
    assert at.latex, "the page's key formulas stay LaTeX"
    formulas = {r[0]: r[3] for r in glossary_rows(at)}
    for term in ("scale", "zero point", "dequantize", "mean squared error (MSE)",
                 "signal-to-quantization-noise ratio (SQNR)"):
        assert formulas.get(term, "").startswith("$"), f"{term}: its formula in LaTeX"
    definitions = [r[2] for r in glossary_rows(at)]
    if lang == "zh":
        assert at.title[0].value.endswith("术语表")
        assert all(CJK.search(d) for d in definitions), "definitions in Chinese"
        names = allowed_names() + tuple(en for _zh, en in TERMS) + tuple(glossary_cells(at)[0])
        left = [line for line in english_leftovers(at, names) if line.startswith("main/")]
        assert not left, report("glossary page (main area), lang=zh: English runs", left)
        bold = [line for line in markdown_problems(at) if line.startswith("main/")]
        assert not bold, report("glossary page, lang=zh: bold that shows its **", bold)
    else:
        assert at.title[0].value.endswith("Glossary")
        assert not any(CJK.search(d) for d in definitions), "definitions in English"


def test_the_glossary_search_narrows_the_list():
    at = open_page("glossary", model="digits-mlp", lang="zh")
    at.text_input(key="glossary_q").set_value("零点").run()
    assert not failures(at)
    english, chinese = glossary_cells(at)
    assert any(c.startswith("零点") for c in chinese) and len(chinese) < len(TERMS)
    at.text_input(key="glossary_q").set_value("clip").run()
    english, chinese = glossary_cells(at)
    assert {"clipping", "clip ratio"} <= {e.lower() for e in english}
    assert len(english) < len(TERMS)
