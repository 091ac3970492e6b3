"""The power-loss screen (SR-TH-5): what was running, what was delivered, resume or discard.

Owns the boot-time offer of an interrupted therapy read from the progress record
(``firmware/progress_store.py``).  The pump never resumes by itself: the screen
shows the therapy (drug line, rate, delivered of the VTBI) and waits:

* SELECT resumes: the remaining volume (VTBI - delivered) is programmed with the
  same rate, KVO, occlusion and air limits (and the library's hard rate limits)
  and started, logged ``POWER_LOSS_RESUMED``; a refusal (an alarm, a door open,
  nothing left to deliver) is shown and the screen stays.
* RUN/STOP discards: the record is cleared, logged ``POWER_LOSS_DISCARDED``.

Who may resume: the patient as well as the clinician.  The confirmed program is
exactly the one the clinician set, only what is left of it (the therapy is not
changed, SPEC 1); an ambulatory pump at home is often restarted by the patient
after a battery change, and a therapy left off is itself a hazard.  The
confirmation is the key press on the screen that shows the program.

It stands in for the programming menu (``app.menu``: ``active``, ``lines``,
``on_keys``, ``tick``), so ``firmware/ui.py`` shows it and ``PumpApp._on_keys``
gives it the keys (SELECT acknowledges an unacknowledged alarm first).  It
does not time out; it closes when a therapy starts.  Imported only when there
is something to offer.
"""
import safety_core as sc
from firmware import events
from hal import KEY_RUN_STOP, KEY_SELECT

WIDTH = 21
ERR_RESUME = 32                     # PumpApp._error kind


def _ml(ul):
    return "%d.%d mL" % (ul // 1000, (ul % 1000) // 100)


def offer(app, doc):
    """Show ``doc`` (a running/paused progress record) and log the power loss."""
    app.log.append(events.POWER_LOSS_DETECTED, 1 if doc["state"] == "running" else 2,
                   doc["delivered_ul"])
    app.menu = ResumeScreen(app, doc)
    return app.menu


class ResumeScreen:
    """The offer on the display until SELECT (resume) or RUN/STOP (discard)."""

    def __init__(self, app, doc):
        self.doc = doc
        self.active = True
        self.loaded_here = False      # the offer itself loaded the program (a retry)
        self.msg = None
        spec = doc.get("spec") or {}
        program = doc.get("program")
        self.rate = program[0] if program else spec.get("rate_ul_per_h", 0)
        self.vtbi = program[1] if program else spec.get("vtbi_ul", 0)
        self.lines = []
        self._render()

    # ---- the menu interface --------------------------------------------------------------
    def on_keys(self, app, keys, now):
        try:
            if keys & KEY_SELECT:
                self._resume(app)
            elif keys & KEY_RUN_STOP:
                self._discard(app)
        except Exception as e:             # never let the screen fault reach the cycle
            app._error(ERR_RESUME, e)
            self.msg = "%s" % e
            self._render()
        return 0                           # every key is the screen's while it is up

    def tick(self, app, now):
        phase = app.core.phase
        if phase == sc.PHASE_RUNNING or phase == sc.PHASE_KVO or (
                phase != sc.PHASE_IDLE and not self.loaded_here):
            self._close(app)                # a therapy programmed another way stands

    # ---- actions ---------------------------------------------------------------------------
    def _resume(self, app):
        if app.core.phase != sc.PHASE_IDLE and not self.loaded_here:
            # a program loaded since the offer (service link) replaced the record: it
            # stands, and the offer is gone (SR-TH-5: never the program it replaced)
            self._close(app)
            return
        doc = self.doc
        delivered = doc["delivered_ul"]
        program = doc.get("program")
        left = self.vtbi - delivered
        if self.vtbi and left <= 0:
            self.msg = "Nothing left to deliver: RUN/STOP to clear"
            self._render()
            return
        resume = getattr(app, "resume_therapy", None)
        spec = doc.get("spec")
        try:
            if resume is not None and spec is not None:
                resume(spec, doc.get("snapshot"), delivered)
                therapy = getattr(app, "mode", None)
                if therapy is None:
                    therapy = app.program
            else:
                limits = doc.get("limits") or (0, 0)
                app.program_continuous(program[0], left, program[2], program[3], program[4],
                                       limits[0], limits[1])
                therapy = app.program
            self.loaded_here = True         # a refused start leaves it loaded: retry
            app.progress.mark_resumed(therapy, delivered, doc)
            app.start()
            app.log.append(events.POWER_LOSS_RESUMED, delivered, left)
        except sc.CoreRefused as e:
            self.msg = e.message
            self._render()
            return
        self._close(app)

    def _discard(self, app):
        doc = self.doc
        app.progress.clear(app)
        app.log.append(events.POWER_LOSS_DISCARDED, doc["delivered_ul"], self.vtbi)
        self._close(app)

    def _close(self, app):
        self.active = False
        self.lines = []
        if app.menu is self:
            app.menu = None                 # the next SELECT opens the programming menu

    # ---- the screen ----------------------------------------------------------------------
    def _render(self):
        doc = self.doc
        out = ["POWER LOSS - " + ("running" if doc["state"] == "running" else "paused")]
        name = doc.get("name")
        if name:
            out.append(name[:WIDTH])
        spec = doc.get("spec") or {}
        mode = spec.get("mode", "continuous")
        if mode != "continuous":
            out.append(("Mode " + mode)[:WIDTH])
        out.append(("Rate %d.%d mL/h" % (self.rate // 1000, (self.rate % 1000) // 100)
                    )[:WIDTH])
        out.append(("Given " + _ml(doc["delivered_ul"]))[:WIDTH])
        out.append(("of " + _ml(self.vtbi))[:WIDTH])
        if self.msg:
            from firmware.menu import wrap
            out = out[:2]
            out.extend(wrap(self.msg, WIDTH, 3))
        out = out[:5]                       # 7 lines: ui adds the alarm line
        out.append("SELECT=resume")
        out.append("RUN/STOP=discard")
        self.lines = out
