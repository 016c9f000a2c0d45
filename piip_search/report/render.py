"""One self-contained HTML page (plotly.js embedded, works offline) from `ReportData`.

The trial table is drawn in the browser from the embedded rows so that 5,000 trials stay small and fast;
sorting and filtering are a few lines of plain JS (no table library ships with plotly).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import plotly.io as pio
from plotly.offline import get_plotlyjs

from piip_search.report import figures
from piip_search.report.data import ReportData

__all__ = ["render_compare", "render_report"]

_TABLE_COLS = ("trial", "kind", "status", "gflops", "params_m", "ap", "ap_mean", "ap_std", "ap_n", "duration_s",
               "worker", "reason", "branches", "interactions")

_CSS = """body{font-family:sans-serif;margin:1em 2em}table{border-collapse:collapse;font-size:12px}
td,th{border:1px solid #ccc;padding:2px 5px}th{cursor:pointer;background:#eee}.kv td{border:none}
.filters input,.filters select{margin-right:1em}tr.front{background:#e8f0ff}tr.bad{color:#999}"""

_TABLE_JS = """
const ROWS = JSON.parse(document.getElementById('rows').textContent);
const COLS = %s;
let sortKey = 'trial', sortDir = 1;
function num(id){const v=document.getElementById(id).value;return v===''?null:parseFloat(v);}
function visibleRows(){
  const kind=document.getElementById('f-kind').value, text=document.getElementById('f-text').value.toLowerCase();
  const gmin=num('f-gmin'), gmax=num('f-gmax'), amin=num('f-amin'), dmax=num('f-dmax');
  return ROWS.filter(r => (kind==='' || r.kind===kind)
    && (gmin===null || (r.gflops!==null && r.gflops>=gmin)) && (gmax===null || (r.gflops!==null && r.gflops<=gmax))
    && (amin===null || (r.ap!==null && r.ap>=amin)) && (dmax===null || (r.duration_s!==null && r.duration_s<=dmax))
    && (text==='' || (r.worker+' '+r.reason+' '+r.branches+' '+r.status).toLowerCase().includes(text)));
}
function fmt(v){return v===null||v===undefined?'':(typeof v==='number'&&!Number.isInteger(v)?v.toPrecision(4):v);}
function draw(){
  const rows = visibleRows().sort((a,b)=>{const x=a[sortKey],y=b[sortKey];
    return (x===y?0:(x===null?1:(y===null?-1:(x<y?-1:1))))*sortDir;});
  const body = rows.map(r=>'<tr class="'+(r.on_front?'front':(r.kind!=='ok'?'bad':''))+'">'+
    COLS.map(c=>'<td>'+String(fmt(r[c])).replace(/</g,'&lt;')+'</td>').join('')+
    '<td><a href="'+r.config_path+'">config</a> <a href="'+r.log_path+'">log</a></td></tr>').join('');
  document.querySelector('#trials tbody').innerHTML = body;
  document.getElementById('n-shown').textContent = rows.length + ' of ' + ROWS.length + ' trials';
}
document.querySelector('#trials thead tr').innerHTML =
  COLS.map(c=>'<th data-k="'+c+'">'+c+'</th>').join('')+'<th>files</th>';
document.querySelectorAll('#trials th[data-k]').forEach(th=>th.onclick=()=>{
  const k=th.dataset.k; sortDir = (sortKey===k)?-sortDir:1; sortKey=k; draw();});
document.querySelectorAll('.filters input,.filters select').forEach(e=>e.oninput=draw);
draw();
"""

_FILTERS = """<div class="filters">state <select id="f-kind"><option value="">all</option>%s</select>
GFLOPs <input id="f-gmin" size=6 placeholder="min"><input id="f-gmax" size=6 placeholder="max">
AP &ge; <input id="f-amin" size=6> duration (s) &le; <input id="f-dmax" size=6>
worker / reason / branches <input id="f-text" size=16> <span id="n-shown"></span></div>
<table id="trials"><thead><tr></tr></thead><tbody></tbody></table>"""


def _json_rows(d: ReportData) -> str:
    keep = (*_TABLE_COLS, "on_front", "config_path", "log_path")
    rows = [{k: r[k] for k in keep} for r in d.rows]
    return json.dumps(rows, separators=(",", ":"), default=str).replace("</", "<\\/")


def _plot(div_id: str, fig: Any) -> str:
    spec = pio.to_json(fig, validate=False, pretty=False).replace("</", "<\\/")
    return (f"<div id='{div_id}' class='plot'></div><script>(function(){{const f={spec};"
            f"Plotly.newPlot('{div_id}', f.data, f.layout, {{responsive:true}});}})();</script>")


def _header(d: ReportData) -> str:
    h = d.header
    kinds = ", ".join(f"{k} {v}" for k, v in h["by_kind"].items()) or "none"
    knee = "-" if h["knee"] is None else f"trial {h['knee']} ({h['knee_gflops']:.4g} GFLOPs, AP {h['knee_ap']:.4f})"
    budgets = "".join(f"<tr><td>&le; {b['budget_gflops']} GFLOPs</td><td>AP {b['ap']:.4f}</td>"
                      f"<td>trial {b['trial']} ({b['gflops']:.4g} GFLOPs)</td></tr>" for b in h["best_under_budgets"])
    e = html.escape
    return (f"<h1>piip-search report: {e(d.study)}</h1><table class='kv'>"
            f"<tr><td>space</td><td>{e(str(h['space']))}</td></tr><tr><td>sampler</td><td>{e(str(h['sampler']))}"
            f"</td></tr><tr><td>FLOPs convention</td><td>{e(h['flops_convention'])} (multiply-adds)</td></tr>"
            f"<tr><td>trials</td><td>{h['n_trials']}: {e(kinds)}</td></tr>"
            f"<tr><td>front</td><td>{h['front_size']} points, hypervolume {h['hypervolume']:.6g} (reference "
            f"{h['reference_point']})</td></tr><tr><td>knee</td><td id='knee'>{e(knee)}</td></tr>"
            f"<tr><td>export</td><td><code>{e(h['export_command'])}</code></td></tr></table>"
            f"<h3>Best AP under common budgets</h3><table>{budgets}</table><p>{e(d.reference_note)}</p>")


def _page(title: str, body: str) -> str:
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style><script>{get_plotlyjs()}</script></head><body>{body}</body></html>")


def _write_atomic(path: Path, text: str) -> Path:
    """Several workers of one study rewrite the same report: each writes a private file and renames it, so a
    reader never sees half a page."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def render_report(d: ReportData, path: str | Path) -> Path:
    from piip_search.report.data import KINDS

    options = "".join(f"<option>{k}</option>" for k in KINDS)
    body = (_header(d)
            + "<h2>The front</h2>" + _plot("front", figures.front_figure(d))
            + "<h2>Progress</h2>" + _plot("hv", figures.hv_figure(d)) + _plot("progress", figures.progress_figure(d))
            + "<h2>What matters</h2>" + _plot("importance", figures.importance_figure(d))
            + _plot("parcoords", figures.parcoords_figure(d)) + _plot("composition", figures.composition_figure(d))
            + "<h2>Trials</h2>" + _FILTERS % options
            + f"<script type='application/json' id='rows'>{_json_rows(d)}</script>"
            + f"<script>{_TABLE_JS % json.dumps(list(_TABLE_COLS))}</script>")
    return _write_atomic(Path(path), _page(d.study, body))


def render_compare(studies: list[ReportData], path: str | Path) -> Path:
    fr, hv = figures.compare_figures(studies)
    rows = "".join(f"<tr><td>{html.escape(d.study)}</td><td>{html.escape(str(d.header['space']))}</td>"
                   f"<td>{html.escape(str(d.header['sampler']))}</td><td>{d.header['n_trials']}</td>"
                   f"<td>{d.header['front_size']}</td><td>{d.header['hypervolume']:.6g}</td>"
                   f"<td>{d.header['reference_point']}</td></tr>" for d in studies)
    body = ("<h1>piip-search: comparison</h1><table><tr><th>study</th><th>space</th><th>sampler</th><th>trials</th>"
            f"<th>front</th><th>hypervolume</th><th>reference point</th></tr>{rows}</table>"
            "<p>Hypervolumes compare only where the reference points agree.</p>"
            + _plot("front", fr) + _plot("hv", hv))
    return _write_atomic(Path(path), _page("comparison", body))
