"""The tests catch a broken C core: each mutant of safety_core.c must be detected.

Each mutant changes one interlock or accounting rule (the SR it breaks is in its
name), is compiled through cffi like the real build, and is driven against the
pure-Python reference by the differential walk (tests/core_walk.py).  A mutant
that survives means the differential tests could not see that bug.
"""
import importlib.util

import pytest

import safety_core as sc
from safety_core import _build_cffi
from safety_core.cffi_core import CffiCore
from tests.core_walk import scripted, scripted_occlusion, walk

SOURCE = open(_build_cffi.SOURCE).read()

MUTANTS = [
    ("SR_CORE_1_range_check_off_by_one",
     "    if (value > max) {", "    if (value > max + 1u) {"),
    ("SR_CORE_1_rate_resolution_not_checked",
     "        return refuse(why, SC_ERR_NOT_MULTIPLE, field, SC_RATE_STEP_UL_PER_H);",
     "        (void)why;\n        (void)field;"),
    ("accounting_fraction_carry_late",
     "        s->acc += s->rate_rem;\n        if (s->acc >= s->step_cost) {",
     "        s->acc += s->rate_rem;\n        if (s->acc > s->step_cost) {"),
    ("SR_CORE_2_vtbi_overrun_by_one_step",
     "            steps = left; /* never more than the VTBI (SR-CORE-2) */",
     "            steps = left + 1u;"),
    ("SR_CORE_2_kvo_rate_wrong",
     "        steps = s->kvo_whole_steps;", "        steps = s->rate_whole_steps;"),
    ("SR_CORE_3_debounce_longer",
     "w->occlusion_since_tick >= SC_OCCLUSION_DEBOUNCE_TICKS)",
     "w->occlusion_since_tick > SC_OCCLUSION_DEBOUNCE_TICKS)"),
    ("SR_CORE_3_threshold_inclusive",
     "    if (mmhg <= (int32_t)s->program.occlusion_limit_mmhg) {",
     "    if (mmhg < (int32_t)s->program.occlusion_limit_mmhg) {"),
    # ---- occlusion trend, back-off, motion check (issue 8) ---------------------------------
    ("SR_CORE_3_trend_needs_a_larger_rise",
     "rise >= SC_TREND_RISE_MMHG * 16u", "rise >= (SC_TREND_RISE_MMHG + 8u) * 16u"),
    ("SR_CORE_3_trend_compares_half_a_turn_back",
     "    rise = mean16 - m[0];", "    rise = mean16 - m[2];"),
    ("SR_CORE_3_trend_takes_a_step_for_a_rise",
     "most * 100u <= rise * SC_TREND_SHARE_PCT", "most * 100u <= rise * 100u"),
    ("SR_CORE_3_trend_needs_no_rise_in_each_quarter",
     "        if (m[i] < m[i - 1u] + SC_TREND_STEP_MMHG * 16u) {",
     "        if (m[i] < m[i - 1u]) {"),
    ("SR_CORE_3_trend_at_every_rate",
     "        flow_ul_per_h(s) <= SC_TREND_MAX_UL_PER_H) {",
     "        flow_ul_per_h(s) <= SC_TREND_MAX_UL_PER_H * 100u) {"),
    ("SR_CORE_3_trend_kept_across_a_rate_change",
     "    trend_reset(s); /* a new rate moves the line's pressure: the trend starts again */",
     "    (void)0;"),
    ("SR_CORE_4_no_back_off",
     "                uint32_t back = s->pumped_steps - w->trend_rise_steps;",
     "                uint32_t back = 0u;"),
    ("SR_CORE_4_back_off_from_the_segment_start",
     "                uint32_t back = s->pumped_steps - w->trend_rise_steps;",
     "                uint32_t back = s->pumped_steps - w->trend_seg_start_steps;"),
    ("SR_CORE_4_back_off_runs_back_the_last_one_again",
     "                w->trend_rise_steps = s->pumped_steps; /* the back-off relieves the line */\n",
     ""),
    ("SR_CORE_4_quiet_before_a_whole_turn_is_seen",
     "    if (w->trend_filled >= SC_TREND_SEGMENTS &&\n        mean16 <= w->trend_mean0",
     "    if (w->trend_filled + 1u >= 1u &&\n        mean16 <= w->trend_mean0"),
    ("SR_CORE_4_no_more_back_off_while_the_line_is_high",
     "mmhg > (int32_t)SC_BACKOFF_TARGET_MMHG &&", "mmhg > (int32_t)SC_BACKOFF_TARGET_MMHG + 500 &&"),
    ("SR_CORE_4_more_back_off_before_the_last_is_turned",
     " && w->turned_steps == w->reversed_steps &&", " &&"),
    ("SR_CORE_6_stall_slack_one_pulse_longer",
     "w->motion_since_pulse > SC_MOTION_SLACK_PULSES * spp",
     "w->motion_since_pulse > (SC_MOTION_SLACK_PULSES + 1u) * spp"),
    ("SR_CORE_6_runaway_slack_one_pulse_longer",
     "    if (debt > (SC_MOTION_SLACK_PULSES + 1u) * spp) {",
     "    if (debt > (SC_MOTION_SLACK_PULSES + 2u) * spp) {"),
    ("SR_CORE_6_no_runaway_check_while_stopped",
     "    if (spp == 0u) {\n        w->motion_armed = 0u;",
     "    if (spp == 0u || s->phase == SC_PHASE_PAUSED) {\n        w->motion_armed = 0u;"),
    ("SR_CORE_6_back_off_pulses_unexpected",
     "    reverse = w->motion_reverse_steps; /* the back-off's own pulses are expected */",
     "    reverse = 0u;"),
    ("SR_CORE_8_runaway_ack_while_the_cam_turns",
     "!= 0u && in->encoder_count == s->watch.motion_count &&", "!= 0u &&"),
    ("SR_CORE_8_runaway_ack_after_a_short_quiet",
     "s->ticks - s->watch.motion_pulse_tick >= SC_MOTION_QUIET_TICKS",
     "s->ticks - s->watch.motion_pulse_tick >= SC_MOTION_QUIET_TICKS / 10u"),
    ("SR_CORE_5_bubble_at_limit_missed",
     "if (s->air_run_nl >= s->bubble_limit_nl)", "if (s->air_run_nl > s->bubble_limit_nl)"),
    ("SR_CORE_5_window_never_expires",
     "        s->air_window_nl -= s->air_bucket_nl[s->air_bucket_index];",
     "        s->air_window_nl -= 0u;"),
    ("SR_CORE_7_heartbeat_timeout_too_long",
     "&& s->heartbeat_age_ticks > SC_HEARTBEAT_TIMEOUT_TICKS) {",
     "&& s->heartbeat_age_ticks > SC_HEARTBEAT_TIMEOUT_TICKS + 50u) {"),
    ("SR_CORE_8_fault_not_latched",
     "        s->faults |= found;\n        if (motor_active != 0u) {\n            s->phase",
     "        s->faults = found;\n        if (motor_active != 0u) {\n            s->phase"),
    ("SR_CORE_8_sample_fault_not_latched",
     "        s->faults |= found;\n        if (motor_active != 0u) {\n            if",
     "        s->faults = found;\n        if (motor_active != 0u) {\n            if"),
    ("SR_CORE_8_ack_clears_with_cause_present",
     "        in->downstream_mmhg <= (int32_t)s->program.occlusion_limit_mmhg) {",
     "        in->downstream_mmhg <= (int32_t)s->program.occlusion_limit_mmhg + 100) {"),
    ("SR_CORE_8_ack_restarts_motor",
     "        s->heartbeat_age_ticks = 0u;\n    }\n    return s->faults;\n}",
     "        s->heartbeat_age_ticks = 0u;\n    }\n"
     "    if (s->faults == 0u && s->phase == SC_PHASE_PAUSED) {\n        s->phase = SC_PHASE_RUNNING;\n    }\n"
     "    return s->faults;\n}"),
    ("SR_CORE_8_heartbeat_ack_without_fresh_heartbeat",
     "         s->heartbeat_age_ticks <= SC_HEARTBEAT_TIMEOUT_TICKS)) {",
     "         s->heartbeat_age_ticks <= SC_HEARTBEAT_TIMEOUT_TICKS + 1000u)) {"),
    # ---- dose limits, PCA, segments, prime (issue 7) --------------------------------------
    ("SR_CORE_2_hourly_cap_not_enforced",
     "        steps = s->allow_steps;\n", "        (void)0;\n"),
    ("SR_CORE_2_cap_allowance_not_consumed",
     "    s->allow_steps -= counted;", "    (void)counted;"),
    ("SR_CORE_2_pca_lockout_short",
     "s->ticks - s->last_bolus_tick < s->lockout_ticks)",
     "s->ticks - s->last_bolus_tick < s->lockout_ticks / 2u)"),
    ("SR_CORE_2_pca_boluses_per_hour_one_too_many",
     "(s->patient_boluses - s->win_base_boluses) >=", "(s->patient_boluses - s->win_base_boluses) >"),
    ("SR_CORE_2_bolus_ignores_1h_max",
     "if (steps > cap_left(s->max_1h_steps, sc_window_steps(s, 0u))) {",
     "if (steps > cap_left(s->max_1h_steps, 0u)) {"),
    ("SR_CORE_2_bolus_ignores_4h_max",
     "if (steps > cap_left(s->max_4h_steps, sc_window_steps(s, 1u))) {",
     "if (steps > cap_left(s->max_4h_steps, 0u)) {"),
    ("SR_CORE_2_denied_bolus_not_counted",
     "    s->boluses_denied = sat_inc_u32(s->boluses_denied);", "    (void)0;"),
    ("SR_CORE_2_old_bucket_never_leaves_the_hour",
     "        s->win_1h_steps -= s->win_steps[gone];", "        (void)gone;"),
    ("SR_CORE_2_oldest_bucket_never_leaves_4h",
     "        s->win_4h_steps -= s->win_steps[oldest];", "        (void)0;"),
    ("SR_CORE_2_new_program_resets_the_windows",
     "    s->max_1h_steps = cap_steps_of(p->max_1h_ul, s->ustep_volume_pl);",
     "    s->max_1h_steps = cap_steps_of(p->max_1h_ul, s->ustep_volume_pl);\n"
     "    s->win_1h_steps = 0u;\n    s->win_base_steps = s->pumped_steps;"),
    ("SR_CORE_2_bolus_rate_wrong",
     "    uint32_t steps = s->bolus_whole_steps;", "    uint32_t steps = s->bolus_whole_steps + 1u;"),
    ("SR_CORE_2_fault_does_not_cancel_bolus",
     "            s->phase = SC_PHASE_PAUSED;\n            s->bolus_left_steps = 0u; /* a stop cancels the rest of a bolus */\n        }\n    }\n    if",
     "            s->phase = SC_PHASE_PAUSED;\n        }\n    }\n    if"),
    ("SR_CORE_2_segment_end_not_held",
     "        s->segment_held = 1u;\n        s->rate_whole_steps = 0u;",
     "        s->segment_held = 1u;"),
    ("SR_CORE_2_prime_counted_toward_caps",
     "    counted = steps & s->window_mask;", "    counted = steps;"),
    ("SR_CORE_5_air_stop_off_after_prime",
     "    s->air_armed = ((p->flags & SC_FLAG_PRIME) != 0u) ? 0u : 1u;", "    s->air_armed = 0u;"),
    ("SR_CORE_1_prime_volume_unbounded",
     "(prime != 0u) ? SC_PRIME_MAX_UL : SC_VTBI_MAX_UL", "SC_VTBI_MAX_UL"),
    ("SR_CORE_2_resume_without_lockout",
     "    s->last_bolus_tick = s->ticks;\n    s->patient_boluses++;\n    s->win_base_boluses++;",
     "    (void)0;"),
    ("SR_CORE_2_resume_forgets_the_last_hour",
     "    s->win_base_steps -= steps_1h;", "    (void)steps_1h;"),
    ("SR_CORE_2_resume_forgets_hours_1_to_4",
     "        s->win_4h_steps += steps_4h - steps_1h;", "        (void)0;"),
    ("SR_TH_2_basal_plus_bolus_above_device_max",
     "    if (p->bolus_rate_ul_per_h > SC_RATE_MAX_UL_PER_H - p->rate_ul_per_h) {",
     "    if (p->bolus_rate_ul_per_h > SC_RATE_MAX_UL_PER_H) {"),
    ("SR_CORE_5_prime_air_counted_in_the_window",
     "        uint32_t counted = air_nl & s->window_mask;", "        uint32_t counted = air_nl;"),
    ("SR_CORE_1_rate_change_ignores_hard_max",
     "    uint32_t rate_max = (p->hard_max_rate_ul_per_h != 0u) ? p->hard_max_rate_ul_per_h\n"
     "                                                          : SC_RATE_MAX_UL_PER_H;",
     "    uint32_t rate_max = SC_RATE_MAX_UL_PER_H;"),
]


def build_core(tmp_path, name, source_text):
    src = tmp_path / ("%s.c" % name)
    src.write_text(source_text)
    so = _build_cffi.build(name, str(tmp_path), source=str(src),
                           tmp_dir=str(tmp_path / ("build_" + name)))
    spec = importlib.util.spec_from_file_location(name, so)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return sc.SafetyCore(15625, impl=CffiCore(module))


def test_unmutated_build_agrees_with_reference(tmp_path):
    core = build_core(tmp_path, "_sc_original", SOURCE)
    passed, failed, first = walk(core, sc.SafetyCore(15625, backend="reference"))
    assert failed == 0, first
    passed, failed, first = scripted(core, sc.SafetyCore(15625, backend="reference"))
    assert failed == 0 and passed > 1000, first
    passed, failed, first = scripted_occlusion(core, sc.SafetyCore(15625, backend="reference"))
    assert failed == 0 and passed > 1000, first


@pytest.mark.parametrize("name,original,mutated", MUTANTS, ids=[m[0] for m in MUTANTS])
def test_mutant_is_detected(tmp_path, name, original, mutated):
    assert SOURCE.count(original) == 1, "mutation site for %s changed in safety_core.c" % name
    core = build_core(tmp_path, "_sc_mut_" + name, SOURCE.replace(original, mutated))
    passed, failed, first = walk(core, sc.SafetyCore(15625, backend="reference"),
                                 stop_at_first=True)
    if failed == 0:      # the PCA limits the walk reaches only by luck, scripted
        passed, failed, first = scripted(core, sc.SafetyCore(15625, backend="reference"))
    if failed == 0:      # so are occlusions closing at the line's compliance
        passed, failed, first = scripted_occlusion(core,
                                                   sc.SafetyCore(15625, backend="reference"))
    assert failed > 0, "mutant %s survived the differential walk" % name
