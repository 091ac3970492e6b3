/*
 * sc_natmod.c -- MicroPython native module `sc_native`: the device binding of
 * the safety core.
 *
 * Owns only argument conversion.  The state lives in a Python bytearray of at
 * least sizeof(sc_state_t) bytes owned by the caller (safety_core/native.py),
 * so the core keeps no globals and the module needs no initialised data.
 * Every function takes that buffer first.  Nothing here decides steps.
 * The core is compiled into this translation unit (no second object path).
 */
#include "py/dynruntime.h"

/* one translation unit: the core's object files land in this build only */
#include "../src/safety_core.c"

static sc_state_t *state_of(mp_obj_t buf_obj)
{
    mp_buffer_info_t info;
    mp_get_buffer_raise(buf_obj, &info, MP_BUFFER_RW);
    if (info.len < sizeof(sc_state_t)) {
        mp_raise_ValueError(MP_ERROR_TEXT("state buffer too small"));
    }
    return (sc_state_t *)info.buf;
}

/* uint32 arguments up to 2^32 - 1: on a 32-bit port those above 2^31 are big ints,
 * which mp_obj_get_int refuses with OverflowError; the truncated read keeps the bits
 * (the facade has already refused anything outside uint32) */
static uint32_t u32_of(mp_obj_t o)
{
    return (uint32_t)mp_obj_get_int_truncated(o);
}

static mp_obj_t refusal_or_none(uint32_t rc, const sc_refusal_t *why)
{
    if (rc == SC_OK) {
        return mp_const_none;
    }
    mp_obj_t items[3] = {mp_obj_new_int_from_uint(why->code), mp_obj_new_int_from_uint(why->field),
                         mp_obj_new_int_from_uint(why->limit)};
    return mp_obj_new_tuple(3, items);
}

/* state_size() -> bytes the state buffer needs */
static mp_obj_t nm_state_size(void)
{
    return mp_obj_new_int((mp_int_t)sizeof(sc_state_t));
}
static MP_DEFINE_CONST_FUN_OBJ_0(nm_state_size_obj, nm_state_size);

/* init(state, ustep_volume_pl) -> None | (code, field, limit) */
static mp_obj_t nm_init(mp_obj_t state, mp_obj_t pl)
{
    sc_refusal_t why;
    uint32_t rc = sc_init(state_of(state), u32_of(pl), &why);
    return refusal_or_none(rc, &why);
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_init_obj, nm_init);

/* load(state, values) -> None | refusal; values: the sc_program_t fields in
 * declaration order (a list or tuple of SC_PROGRAM_WORDS ints) */
#define SC_PROGRAM_WORDS (sizeof(sc_program_t) / sizeof(uint32_t))
static mp_obj_t nm_load(mp_obj_t state, mp_obj_t values)
{
    sc_program_t p;
    sc_refusal_t why;
    uint32_t *words = (uint32_t *)&p;
    size_t n;
    size_t i;
    mp_obj_t *items;
    mp_obj_get_array(values, &n, &items);
    if (n != SC_PROGRAM_WORDS) {
        mp_raise_ValueError(MP_ERROR_TEXT("program needs every sc_program_t field"));
    }
    for (i = 0; i < SC_PROGRAM_WORDS; i++) {
        words[i] = u32_of(items[i]);
    }
    return refusal_or_none(sc_load_program(state_of(state), &p, &why), &why);
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_load_obj, nm_load);

/* set_rate(state, rate, until_ul) -> None | refusal */
static mp_obj_t nm_set_rate(mp_obj_t state, mp_obj_t rate, mp_obj_t until_ul)
{
    sc_refusal_t why;
    uint32_t rc = sc_set_rate(state_of(state), u32_of(rate), u32_of(until_ul), &why);
    return refusal_or_none(rc, &why);
}
static MP_DEFINE_CONST_FUN_OBJ_3(nm_set_rate_obj, nm_set_rate);

/* bolus(state, kind, amount_ul) -> SC_BOLUS_* */
static mp_obj_t nm_bolus(mp_obj_t state, mp_obj_t kind, mp_obj_t amount_ul)
{
    return mp_obj_new_int_from_uint(sc_bolus(state_of(state), u32_of(kind), u32_of(amount_ul)));
}
static MP_DEFINE_CONST_FUN_OBJ_3(nm_bolus_obj, nm_bolus);

/* restore_history(state, ul_1h, ul_4h, boluses_1h) -> code */
static mp_obj_t nm_restore_history(size_t n_args, const mp_obj_t *args)
{
    (void)n_args;
    return mp_obj_new_int_from_uint(sc_restore_history(state_of(args[0]), u32_of(args[1]),
                                                       u32_of(args[2]), u32_of(args[3])));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(nm_restore_history_obj, 4, 4, nm_restore_history);

/* window_steps(state, hours4) -> steps in the rolling 1 h / 4 h window */
static mp_obj_t nm_window_steps(mp_obj_t state, mp_obj_t hours4)
{
    return mp_obj_new_int_from_uint(sc_window_steps(state_of(state), u32_of(hours4)));
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_window_steps_obj, nm_window_steps);

/* start(state) -> code */
static mp_obj_t nm_start(mp_obj_t state)
{
    return mp_obj_new_int_from_uint(sc_start(state_of(state)));
}
static MP_DEFINE_CONST_FUN_OBJ_1(nm_start_obj, nm_start);

/* pause(state) */
static mp_obj_t nm_pause(mp_obj_t state)
{
    sc_pause(state_of(state));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_1(nm_pause_obj, nm_pause);

static sc_output_t *output_of(mp_obj_t buf_obj)
{
    mp_buffer_info_t out_info;
    mp_get_buffer_raise(buf_obj, &out_info, MP_BUFFER_RW);
    if (out_info.len < sizeof(sc_output_t)) {
        mp_raise_ValueError(MP_ERROR_TEXT("output buffer too small"));
    }
    return (sc_output_t *)out_info.buf;
}

/* run(state, out, mmhg, air_nl, air_present, heartbeat, n_ticks, encoder) -> steps
 * out: bytearray(16) receiving the sc_output_t. */
static mp_obj_t nm_run(size_t n_args, const mp_obj_t *args)
{
    sc_inputs_t in;
    sc_output_t *out = output_of(args[1]);
    (void)n_args;
    in.downstream_mmhg = (int32_t)mp_obj_get_int(args[2]);
    in.air_nl = u32_of(args[3]);
    in.air_present = u32_of(args[4]);
    in.heartbeat = u32_of(args[5]);
    in.encoder_count = u32_of(args[7]);
    sc_run(state_of(args[0]), &in, u32_of(args[6]), out);
    return mp_obj_new_int_from_uint(out->steps);
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(nm_run_obj, 8, 8, nm_run);

/* tick(state, out, air_nl, air_present, heartbeat) -> steps (no sample) */
static mp_obj_t nm_tick(size_t n_args, const mp_obj_t *args)
{
    sc_inputs_t in;
    (void)n_args;
    in.downstream_mmhg = 0;
    in.air_nl = u32_of(args[2]);
    in.air_present = u32_of(args[3]);
    in.heartbeat = u32_of(args[4]);
    in.encoder_count = 0u;
    return mp_obj_new_int_from_uint(sc_tick(state_of(args[0]), &in, output_of(args[1])));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(nm_tick_obj, 5, 5, nm_tick);

/* sample(state, mmhg, encoder) -> faults latched */
static mp_obj_t nm_sample(mp_obj_t state, mp_obj_t mmhg, mp_obj_t encoder)
{
    sc_inputs_t in;
    in.downstream_mmhg = (int32_t)mp_obj_get_int(mmhg);
    in.air_nl = 0u;
    in.air_present = 0u;
    in.heartbeat = 0u;
    in.encoder_count = u32_of(encoder);
    return mp_obj_new_int_from_uint(sc_sample(state_of(state), &in));
}
static MP_DEFINE_CONST_FUN_OBJ_3(nm_sample_obj, nm_sample);

/* take_backoff(state) -> reverse microsteps to run now */
static mp_obj_t nm_take_backoff(mp_obj_t state)
{
    return mp_obj_new_int_from_uint(sc_take_backoff(state_of(state)));
}
static MP_DEFINE_CONST_FUN_OBJ_1(nm_take_backoff_obj, nm_take_backoff);

/* backoff_done(state, usteps): the motor turned back by usteps */
static mp_obj_t nm_backoff_done(mp_obj_t state, mp_obj_t usteps)
{
    sc_backoff_done(state_of(state), u32_of(usteps));
    return mp_const_none;
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_backoff_done_obj, nm_backoff_done);

/* set_motion_check(state, usteps_per_pulse) -> None | refusal */
static mp_obj_t nm_set_motion_check(mp_obj_t state, mp_obj_t spp)
{
    sc_refusal_t why;
    uint32_t rc = sc_set_motion_check(state_of(state), u32_of(spp), &why);
    return refusal_or_none(rc, &why);
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_set_motion_check_obj, nm_set_motion_check);

/* acknowledge(state, mmhg, air_present, heartbeat, encoder) -> faults still latched */
static mp_obj_t nm_ack(size_t n_args, const mp_obj_t *args)
{
    sc_inputs_t in;
    (void)n_args;
    in.downstream_mmhg = (int32_t)mp_obj_get_int(args[1]);
    in.air_nl = 0u;
    in.air_present = u32_of(args[2]);
    in.heartbeat = u32_of(args[3]);
    in.encoder_count = u32_of(args[4]);
    return mp_obj_new_int_from_uint(sc_acknowledge(state_of(args[0]), &in));
}
static MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(nm_ack_obj, 5, 5, nm_ack);

/* word(state, index) -> the index-th 32-bit word of the state (read-only view) */
static mp_obj_t nm_word(mp_obj_t state, mp_obj_t index)
{
    const uint32_t *words = (const uint32_t *)state_of(state);
    mp_int_t i = mp_obj_get_int(index);
    if (i < 0 || (size_t)i >= sizeof(sc_state_t) / sizeof(uint32_t)) {
        mp_raise_ValueError(MP_ERROR_TEXT("state word index out of range"));
    }
    return mp_obj_new_int_from_uint(words[i]);
}
static MP_DEFINE_CONST_FUN_OBJ_2(nm_word_obj, nm_word);

mp_obj_t mpy_init(mp_obj_fun_bc_t *self, size_t n_args, size_t n_kw, mp_obj_t *args)
{
    MP_DYNRUNTIME_INIT_ENTRY
    mp_store_global(MP_QSTR_state_size, MP_OBJ_FROM_PTR(&nm_state_size_obj));
    mp_store_global(MP_QSTR_init, MP_OBJ_FROM_PTR(&nm_init_obj));
    mp_store_global(MP_QSTR_load, MP_OBJ_FROM_PTR(&nm_load_obj));
    mp_store_global(MP_QSTR_start, MP_OBJ_FROM_PTR(&nm_start_obj));
    mp_store_global(MP_QSTR_pause, MP_OBJ_FROM_PTR(&nm_pause_obj));
    mp_store_global(MP_QSTR_run, MP_OBJ_FROM_PTR(&nm_run_obj));
    mp_store_global(MP_QSTR_tick, MP_OBJ_FROM_PTR(&nm_tick_obj));
    mp_store_global(MP_QSTR_sample, MP_OBJ_FROM_PTR(&nm_sample_obj));
    mp_store_global(MP_QSTR_take_backoff, MP_OBJ_FROM_PTR(&nm_take_backoff_obj));
    mp_store_global(MP_QSTR_backoff_done, MP_OBJ_FROM_PTR(&nm_backoff_done_obj));
    mp_store_global(MP_QSTR_set_motion_check, MP_OBJ_FROM_PTR(&nm_set_motion_check_obj));
    mp_store_global(MP_QSTR_acknowledge, MP_OBJ_FROM_PTR(&nm_ack_obj));
    mp_store_global(MP_QSTR_word, MP_OBJ_FROM_PTR(&nm_word_obj));
    mp_store_global(MP_QSTR_set_rate, MP_OBJ_FROM_PTR(&nm_set_rate_obj));
    mp_store_global(MP_QSTR_bolus, MP_OBJ_FROM_PTR(&nm_bolus_obj));
    mp_store_global(MP_QSTR_window_steps, MP_OBJ_FROM_PTR(&nm_window_steps_obj));
    mp_store_global(MP_QSTR_restore_history, MP_OBJ_FROM_PTR(&nm_restore_history_obj));
    MP_DYNRUNTIME_INIT_EXIT
}
