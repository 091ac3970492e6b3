"""Read-only web page over the fleet archive (SR-SVC-6): ``pumpctl fleet serve``.

``create_app(db)`` builds a Flask application on an archive (a SQLite path, a SQLAlchemy URL
or an Engine) that only reads it through ``archive.fleet_summary`` / ``archive.pump_timeline``
and the one query below (the records the timeline plot needs):

- ``/``: every archived pump (serial, last seen, records, active alarms, gaps), pumps with
  active alarms first, then those with gaps or conflicting copies, each visibly flagged;
- ``/pump/<serial>``: one pump's summary, a plot of rate / volume delivered / alarms over
  time (``logs_export.plot_records``, the PNG of ``pumpctl logs plot``, served at
  ``/pump/<serial>/timeline.png``), active alarms, gaps, pulls and the recent notable events;
- an unknown serial is a 404 page naming it; any method but GET/HEAD is answered 405.

Everything shown goes through Jinja with autoescaping on (templates in this module, named
``*.html``); the pages carry no script and a Content-Security-Policy that allows none.  The
page has no login: ``pumpctl fleet serve`` binds 127.0.0.1 unless told otherwise.
"""
import os
import tempfile
import threading
import time

import click
import jinja2
import sqlalchemy as sa
from flask import Flask, Response, abort, render_template, request

from firmware import alarms as al
from firmware import eventlog, events
from host_tools.fleet import archive
from host_tools.fleet import db as fdb

ALLOWED_METHODS = ("GET", "HEAD")
PLOT_RECORDS = 20000       # the plot covers at most this many (most recent) plotted records
EVENTS_SHOWN = 50          # notable events in the pump page's table

# records that make the plot: therapy (rate, volume), alarms, power (a restart ends both)
PLOT_TYPES = (events.POWER_ON, events.POWER_OFF, events.THERAPY_CONTEXT,
              events.THERAPY_PROGRAMMED, events.THERAPY_STARTED, events.THERAPY_PAUSED,
              events.THERAPY_RESUMED, events.THERAPY_STOPPED, events.THERAPY_COMPLETED,
              events.ALARM_RAISED, events.ALARM_ACKNOWLEDGED, events.ALARM_SILENCED,
              events.ALARM_CLEARED)

_plot_lock = threading.Lock()     # matplotlib is not promised to be thread-safe

TEMPLATES = {
    "base.html": """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{% block title %}Fleet archive{% endblock %}</title>
<style>
body { font-family: sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em 0; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #eee; }
tr.alarm td { background: #fde2e2; }
tr.gap td { background: #fff4cc; }
.flag { font-weight: bold; padding: 0 0.3em; border-radius: 3px; white-space: nowrap; }
.flag.alarm { color: #fff; background: #c00; }
.flag.gap { color: #000; background: #fc0; }
.flag.conflict { color: #fff; background: #850; }
.flag.ok { color: #060; }
.muted { color: #777; }
img.plot { max-width: 100%; border: 1px solid #ccc; }
</style>
</head>
<body>
<p class="muted"><a href="{{ url_for('index') }}">Fleet archive</a> &middot; read-only
&middot; page made {{ now }}</p>
{% block body %}{% endblock %}
</body>
</html>
""",
    "index.html": """{% extends "base.html" %}
{% block body %}
<h1>Fleet archive: {{ pumps|length }} pump{{ "" if pumps|length == 1 else "s" }}</h1>
<p id="summary">{{ n_alarm }} with active alarms, {{ n_gap }} with gaps or conflicts.</p>
{% if not pumps %}<p>No pumps archived yet.</p>{% else %}
<table id="pumps">
<tr><th>status</th><th>pump</th><th>last seen (import)</th><th>last record (pump clock)</th>
<th>records</th><th>active alarms</th><th>gaps</th></tr>
{% for p in pumps %}
<tr class="pump {{ p.css }}" data-serial="{{ p.serial }}">
<td class="status">{% for f in p.flags %}<span class="flag {{ f.css }}">{{ f.text }}</span> {% endfor %}
{% if not p.flags %}<span class="flag ok">OK</span>{% endif %}</td>
<td class="serial"><a href="{{ url_for('pump', serial=p.serial) }}">{{ p.serial }}</a>
{% if p.model %}<span class="muted">({{ p.model }})</span>{% endif %}</td>
<td>{{ p.last_seen }}</td><td>{{ p.last_record }}</td>
<td>{{ p.records }}{% if p.records %} <span class="muted">(seq {{ p.first_seq }}..{{ p.last_seq }})</span>{% endif %}</td>
<td class="alarms">{{ p.alarm_text or "none" }}</td>
<td class="gaps">{{ p.gap_text or "none" }}{% if p.conflicts %}; {{ p.conflicts }} conflicting cop{{ "y" if p.conflicts == 1 else "ies" }}{% endif %}</td>
</tr>
{% endfor %}
</table>
{% endif %}
{% endblock %}
""",
    "pump.html": """{% extends "base.html" %}
{% block title %}Pump {{ t.serial }} - fleet archive{% endblock %}
{% block body %}
<h1>Pump <span id="serial">{{ t.serial }}</span>{% if t.model %} <span class="muted">({{ t.model }})</span>{% endif %}</h1>
<p>{% for f in flags %}<span class="flag {{ f.css }}">{{ f.text }}</span> {% endfor %}
{{ t.records }} records, seq {{ t.first_seq }}..{{ t.last_seq }}, {{ first_rtc }} .. {{ last_rtc }} (pump clock);
first imported {{ first_seen }}, last {{ last_seen }}.</p>
<table>
<tr><th>active alarms</th><td id="alarms">{{ alarm_text or "none" }}</td></tr>
<tr><th>gaps</th><td id="gaps">{{ gap_text or "none" }}</td></tr>
<tr><th>conflicting copies</th><td>{{ conflict_text or "none" }}</td></tr>
</table>
<h2>Timeline</h2>
{% if t.records %}
<img class="plot" id="timeline" alt="rate, volume delivered and alarms of pump {{ t.serial }}"
 src="{{ url_for('pump_plot', serial=t.serial) }}">
{% else %}<p>No records archived: nothing to plot.</p>{% endif %}
<h2>Recent events (last {{ events|length }} notable)</h2>
<table id="events">
<tr><th>seq</th><th>pump time (UTC)</th><th>event</th><th>detail</th></tr>
{% for e in events %}
<tr class="{{ e.css }}"><td>{{ e.seq }}</td><td>{{ e.when }}</td><td>{{ e.type_name }}</td><td>{{ e.detail }}</td></tr>
{% endfor %}
</table>
<h2>Pulls</h2>
<table id="pulls">
<tr><th>#</th><th>file</th><th>imported</th><th>seq</th><th>new</th><th>already</th><th>conflicts</th><th>problems</th></tr>
{% for p in pulls %}
<tr><td>{{ p.id }}</td><td>{{ p.source }}</td><td>{{ p.when }}</td><td>{{ p.first_seq }}..{{ p.last_seq }}</td>
<td>{{ p.new }}</td><td>{{ p.already }}</td><td>{{ p.conflicts }}</td><td>{{ p.problems }}{% if p.problem_text %}<br><span class="muted">{{ p.problem_text }}</span>{% endif %}</td></tr>
{% endfor %}
</table>
{% endblock %}
""",
    "error.html": """{% extends "base.html" %}
{% block title %}{{ code }} {{ name }} - fleet archive{% endblock %}
{% block body %}
<h1>{{ code }} {{ name }}</h1>
<p id="message">{{ message }}</p>
{% endblock %}
""",
}


when = archive.when_text
ranges_text = archive.ranges_text


def alarms_text(ids):
    return ", ".join("%s (%s)" % (archive.alarm_label(a), al.PRIORITY_NAMES[al.priority(a)])
                     if a in al.TABLE else archive.alarm_label(a) for a in ids)


def flags(alarms, gaps, conflicts):
    out = []
    if alarms:
        out.append({"css": "alarm", "text": "ALARM"})
    if gaps:
        out.append({"css": "gap", "text": "GAP"})
    if conflicts:
        out.append({"css": "conflict", "text": "CONFLICT"})
    return out


def order(row):
    """Active alarms first, then gaps or conflicts, then the rest; by serial within."""
    return (0 if row["alarms"] else 1 if (row["gaps"] or row["conflicts"]) else 2,
            row["serial"])


def event_detail(e):
    """A short text of a timeline event's arguments (decoded as ``logs export`` does)."""
    from host_tools.logs_export import ExportError, decode_record
    name = e["type_name"]
    if name.startswith("ALARM_"):
        return archive.alarm_label(e["a"])
    try:
        d = decode_record(dict(e, mono_ms=0, link=None))
    except ExportError:
        return ""
    if name == "THERAPY_PROGRAMMED":
        return "%.1f mL/h, VTBI %.1f mL" % (d["rate_ul_per_h"] / 1000.0, d["vtbi_ul"] / 1000.0)
    if "delivered_ul" in d:
        text = "delivered %.3f mL" % (d["delivered_ul"] / 1000.0)
        if d.get("faults"):
            text += ", faults %s" % d["faults"]
        return text
    if name == "LOG_SEGMENT_RECYCLED":
        return "first kept seq %d" % d["first_kept_seq"]
    if name == "CLOCK_SET":
        return "%s -> %s" % (when(d["old_rtc_s"]), when(d["new_rtc_s"]))
    if name in ("LIBRARY_LOADED",):
        return "library %d version %d" % (d["library_id"], d["library_version"])
    if name == "LIBRARY_REJECTED":
        return "%s (library %d)" % (d["reason"], d["library_id"])
    if name == "ERROR":
        return d.get("errors", "")
    if name in ("SELF_TEST_FAILED",):
        return "%d of %d tests failed" % (d["tests_failed"], d["tests_run"])
    return ""


def plot_records_of(engine, serial, limit=PLOT_RECORDS):
    """Record dicts (as ``logfile.read_records`` gives them) of one pump for the plot: its
    last ``limit`` therapy, alarm and power records, plus its first and last record so the
    time axis spans what the archive holds of it."""
    t = fdb.records
    cols = (t.c.seq, t.c.type, t.c.rtc_s, t.c.mono_ms, t.c.a, t.c.b, t.c.link)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*cols).where(
            t.c.serial == serial, t.c.type.in_(PLOT_TYPES)).order_by(
            t.c.seq.desc()).limit(limit)).all()
        lo, hi = conn.execute(sa.select(sa.func.min(t.c.seq), sa.func.max(t.c.seq)).where(
            t.c.serial == serial)).one()
        ends = [hi] if len(rows) >= limit else [lo, hi]       # a cut plot starts at the cut
        ends = conn.execute(sa.select(*cols).where(
            t.c.serial == serial, t.c.seq.in_([s for s in ends if s is not None]))).all()
    by_seq = {}
    for seq, ty, rtc, mono, a, b, link in list(rows) + list(ends):
        by_seq[int(seq)] = {"seq": int(seq), "type": int(ty), "type_name": events.name(ty),
                            "rtc_s": int(rtc), "mono_ms": int(mono), "a": int(a),
                            "b": int(b), "link": int(link)}
    return [by_seq[s] for s in sorted(by_seq)]


def plot_png(records, title):
    """PNG bytes of ``logs_export.plot_records`` (the ``pumpctl logs plot`` figure)."""
    from host_tools.logs_export import plot_records
    with _plot_lock, tempfile.TemporaryDirectory(prefix="fleet-plot-") as d:
        path = os.path.join(d, "timeline.png")
        plot_records(records, path, title=title)
        with open(path, "rb") as f:
            return f.read()


def host_name(host):
    """The name part of a Host header (``[::1]:8000`` -> ``[::1]``, ``a:80`` -> ``a``)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def create_app(db, allowed_hosts=None):
    """The Flask app serving the archive ``db`` (path, URL or Engine) read-only.

    ``allowed_hosts``: the only Host header names answered (others get 400), so a page on
    loopback cannot be read through DNS rebinding (a hostile site's name re-pointed at
    127.0.0.1); None answers any.  Raises ``fdb.ArchiveError`` when the archive cannot be
    opened (a missing SQLite file is not created)."""
    engine = fdb.open_archive(db, create=False)
    allowed = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
    app = Flask(__name__)
    app.jinja_loader = jinja2.DictLoader(TEMPLATES)
    app.jinja_env.autoescape = True               # every template, whatever its name
    app.config["FLEET_ENGINE"] = engine

    def page(template, status=200, **kw):
        return render_template(template, now=when(time.time()), **kw), status

    @app.before_request
    def read_only():
        if allowed is not None and host_name(request.host) not in allowed:
            abort(400, description="host %s is not served here" % host_name(request.host))
        if request.method not in ALLOWED_METHODS:
            abort(405)

    @app.after_request
    def headers(resp):
        resp.headers["Content-Security-Policy"] = (
            "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; "
            "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        resp.headers["Referrer-Policy"] = "no-referrer"
        resp.headers["Cache-Control"] = "no-store"
        if resp.status_code == 405:
            resp.headers["Allow"] = ", ".join(ALLOWED_METHODS)
        return resp

    @app.errorhandler(404)
    def not_found(e):
        msg = getattr(e, "description", None) or "no such page"
        return page("error.html", 404, code=404, name="Not Found", message=msg)

    @app.errorhandler(400)
    def bad_request(e):
        return page("error.html", 400, code=400, name="Bad Request",
                    message=getattr(e, "description", None) or "bad request")

    @app.errorhandler(405)
    def not_allowed(e):
        return page("error.html", 405, code=405, name="Method Not Allowed",
                    message="%s refused: this page only reads the fleet archive (GET)"
                    % request.method)

    @app.errorhandler(fdb.ArchiveError)
    @app.errorhandler(sa.exc.SQLAlchemyError)
    def archive_failed(e):
        app.logger.error("fleet archive: %s", e)
        return page("error.html", 503, code=503, name="Archive Unavailable",
                    message="the fleet archive cannot be read now (%s)" % e.__class__.__name__)

    @app.route("/")
    def index():
        rows = sorted(archive.fleet_summary(engine), key=order)
        pumps = []
        for r in rows:
            fl = flags(r["alarms"], r["gaps"], r["conflicts"])
            pumps.append(dict(
                r, flags=fl, css=fl[0]["css"] if fl else "ok",
                last_seen=when(r["last_seen_s"]), last_record=when(r["last_rtc_s"]),
                alarm_text=alarms_text(r["alarms"]), gap_text=ranges_text(r["gaps"])))
        return page("index.html", pumps=pumps,
                    n_alarm=sum(1 for r in rows if r["alarms"]),
                    n_gap=sum(1 for r in rows if r["gaps"] or r["conflicts"]))

    @app.route("/pump/<path:serial>")
    def pump(serial):
        t = archive.pump_timeline(engine, serial, limit=EVENTS_SHOWN)
        if t is None:
            abort(404, description="pump %s is not in the fleet archive" % serial)
        evs = []
        for e in reversed(t["events"]):           # newest first
            css = ""
            if e["type"] == events.ALARM_RAISED:
                css = "alarm"
            elif e["type"] == eventlog.LOG_SEGMENT_RECYCLED:
                css = "gap"
            evs.append(dict(e, when=when(e["rtc_s"]), detail=event_detail(e), css=css))
        pulls = [dict(p, when=when(p["started_s"]) + ("" if p["finished_s"] else
                                                       " (interrupted)"))
                 for p in t["pulls"]]
        conf = t["conflicts"]
        return page("pump.html", t=t, flags=flags(t["alarms"], t["gaps"], conf),
                    first_rtc=when(t["first_rtc_s"]), last_rtc=when(t["last_rtc_s"]),
                    first_seen=when(t["first_seen_s"]), last_seen=when(t["last_seen_s"]),
                    alarm_text=alarms_text(t["alarms"]), gap_text=ranges_text(t["gaps"], 20),
                    conflict_text=("seq " + ranges_text([(s, s) for s in conf], 20))
                    if conf else "", events=evs, pulls=pulls)

    @app.route("/pump/<path:serial>/timeline.png")
    def pump_plot(serial):
        records = plot_records_of(engine, serial)
        if not records:
            abort(404, description="pump %s has no archived records to plot" % serial)
        try:
            png = plot_png(records, "pump %s: seq %d..%d" % (serial, records[0]["seq"],
                                                              records[-1]["seq"]))
        except click.ClickException as e:        # plot_records' way of refusing a log
            abort(404, description="pump %s: cannot plot: %s" % (serial, e.message))
        return Response(png, mimetype="image/png")

    return app
