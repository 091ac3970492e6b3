"""Scenario files: find, read and check ``sim/scenarios/<name>.json``.

Owns the scenario data format (its one definition is the JSON Schema
``sim/scenarios/scenario.schema.json``, draft 2020-12) and the loader the
runner (``sim/scenario.py``) uses.  Portable: ``json`` and string operations
only, so MicroPython loads the same files as CPython.  Checking is done by
interpreting the schema itself (the subset of keywords it uses; any other
keyword is refused, so the file and this checker cannot drift apart), then the
checks a schema cannot state (event times inside the run, alarm names that
exist in ``firmware/alarms.py``).  A bad file raises ``ScenarioError`` whose
message names the file, the place and the problem.
"""
import json
import os

from firmware import alarms as al
from sim.prng import poisson_times_s


def _here():
    path = __file__
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else ("/" if cut == 0 else ".")


SCENARIO_DIR = _here() + "/scenarios"
SCHEMA_FILE = "scenario.schema.json"
_SUFFIX = ".json"


class ScenarioError(ValueError):
    """A scenario that cannot be run: unknown name or malformed file."""


# ---- names and files ---------------------------------------------------------------------
def _valid_name(name):
    if not isinstance(name, str) or not name or len(name) > 64:
        return False
    for ch in name:
        if not ("a" <= ch <= "z" or "0" <= ch <= "9" or ch == "_"):
            return False
    return True


def list_scenarios(directory=None):
    """Sorted names of the scenario files (``<name>.json`` without the schema)."""
    directory = directory or SCENARIO_DIR
    names = []
    for entry in os.listdir(directory):
        if entry.endswith(_SUFFIX) and entry != SCHEMA_FILE:
            names.append(entry[:-len(_SUFFIX)])
    names.sort()
    return names


def _read_json(path, what):
    try:
        f = open(path)
    except OSError:
        raise ScenarioError("%s: cannot open %s" % (what, path))
    try:
        try:
            return json.load(f)
        except ValueError as e:
            raise ScenarioError("%s: not valid JSON (%s)" % (what, e))
    finally:
        f.close()


_schema_cache = []


def schema():
    """The scenario JSON Schema (a dict), read once."""
    if not _schema_cache:
        _schema_cache.append(_read_json(SCENARIO_DIR + "/" + SCHEMA_FILE, SCHEMA_FILE))
    return _schema_cache[0]


def load_scenario(name, directory=None):
    """The scenario ``name``, checked and completed: a dict as in the file plus
    ``name`` and ``press_times_s`` (the patient's presses, drawn from the seed).
    Raises ScenarioError for an unknown name or a malformed file."""
    directory = directory or SCENARIO_DIR
    known = list_scenarios(directory)
    if not _valid_name(name) or name not in known:
        raise ScenarioError("unknown scenario %r; choose from: %s" % (name, ", ".join(known)))
    what = name + _SUFFIX
    data = _read_json(directory + "/" + what, what)
    return prepare(data, name)


def prepare(data, name="<scenario>"):
    """Check a scenario dict (schema, then cross-field rules) and complete it."""
    what = name + _SUFFIX if name[:1] != "<" else name
    problem = validate(data, schema())
    if problem is None:
        problem = _semantic_problem(data)
    if problem is not None:
        raise ScenarioError("%s: %s" % (what, problem))
    out = dict(data)
    out["name"] = name
    out["press_times_s"] = press_times_s(data)
    return out


def press_times_s(data):
    """When the patient presses BOLUS: the Poisson draws and the scripted ``bolus`` events
    are kept apart (the events go through ``events``); [] without ``patient_presses``."""
    pp = data.get("patient_presses")
    if not pp:
        return []
    end_s = pp.get("end_s", data["duration_s"])
    return poisson_times_s(pp["seed"], pp["mean_interval_s"], pp.get("start_s", 0), end_s)


def alarm_id(alarm_name):
    """The id of alarm NAME (an alarm-id attribute of ``firmware.alarms``), or None."""
    if not isinstance(alarm_name, str) or not alarm_name.isupper() or \
            alarm_name.startswith("PRIORITY_") or alarm_name.startswith("CLEAR_") or \
            alarm_name.endswith("_MS"):
        return None          # the module's other constants are not alarms
    value = getattr(al, alarm_name, None)
    if isinstance(value, int) and not isinstance(value, bool) and value in al.TABLE:
        return value
    return None


def alarm_names():
    """Every alarm NAME a scenario may give a cause for, sorted."""
    names = [attr for attr in dir(al) if alarm_id(attr) is not None]
    names.sort()
    return names


def _semantic_problem(data):
    duration = data["duration_s"]
    for i, event in enumerate(data["events"]):
        if event[0] >= duration:
            return "events[%d]: time %d s is not before the end of the run (%d s)" % (
                i, event[0], duration)
    for cause_name, times in data["causes"].items():
        if alarm_id(cause_name) is None:
            return "causes: unknown alarm %r (choose from: %s)" % (
                cause_name, ", ".join(alarm_names()))
        for t in (times if isinstance(times, list) else [times]):
            if t >= duration:
                return "causes.%s: time %d s is not before the end of the run (%d s)" % (
                    cause_name, t, duration)
    pp = data.get("patient_presses")
    if pp:
        if "therapy" not in data:
            return "patient_presses: needs a therapy (the pump must have a bolus to give)"
        if pp.get("end_s", duration) > duration or pp.get("start_s", 0) >= \
                pp.get("end_s", duration):
            return "patient_presses: start_s/end_s must satisfy start_s < end_s <= duration_s"
    return None


# ---- the JSON Schema subset ---------------------------------------------------------------
_ANNOTATIONS = ("$schema", "$id", "$defs", "title", "description", "$comment", "default",
                "examples")
_KNOWN = ("$ref", "type", "enum", "const", "minimum", "maximum", "exclusiveMinimum",
          "minLength", "pattern", "required", "properties", "additionalProperties",
          "propertyNames", "items", "prefixItems", "minItems", "maxItems", "allOf", "oneOf",
          "if", "then", "else") + _ANNOTATIONS


def _is_type(value, name):
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if name == "boolean":
        return isinstance(value, bool)
    if name == "null":
        return value is None
    if isinstance(value, bool):
        return False
    if name == "integer":       # stricter than JSON Schema: 3.0 is refused, not truncated
        return isinstance(value, int)
    if name == "number":
        return isinstance(value, (int, float))
    raise ScenarioError("schema: unsupported type %r" % name)


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _at(path):
    return path if path else "(top level)"


def _join(path, key):
    if isinstance(key, int):
        return "%s[%d]" % (path, key)
    return "%s.%s" % (path, key) if path else key


def validate(instance, schema_doc, root=None, path=""):
    """None if ``instance`` is valid against ``schema_doc``, else the first problem found
    ("events[2][1]: 'clmap' is not one of: clamp, bubble, ...")."""
    root = schema_doc if root is None else root
    if schema_doc is True:
        return None
    if schema_doc is False:
        return "%s: not allowed here" % _at(path)
    for key in schema_doc:
        if key not in _KNOWN:
            raise ScenarioError("schema: keyword %r is not supported by the portable checker"
                                % key)
    if "$ref" in schema_doc:
        ref = schema_doc["$ref"]
        if not ref.startswith("#/"):
            raise ScenarioError("schema: only local $ref, not %r" % ref)
        target = root
        for part in ref[2:].split("/"):
            target = target[part]
        problem = validate(instance, target, root, path)
        if problem:
            return problem
    if "type" in schema_doc:
        types = schema_doc["type"]
        types = types if isinstance(types, list) else [types]
        if not any(_is_type(instance, t) for t in types):
            return "%s: %s is not of type %s" % (_at(path), _show(instance), " or ".join(types))
    if "const" in schema_doc and not _equal(instance, schema_doc["const"]):
        return "%s: must be %s, not %s" % (_at(path), _show(schema_doc["const"]),
                                            _show(instance))
    if "enum" in schema_doc and not any(_equal(instance, v) for v in schema_doc["enum"]):
        return "%s: %s is not one of: %s" % (_at(path), _show(instance),
                                              ", ".join(str(v) for v in schema_doc["enum"]))
    if isinstance(instance, (int, float)) and not isinstance(instance, bool):
        if "minimum" in schema_doc and instance < schema_doc["minimum"]:
            return "%s: %s is below the minimum %s" % (_at(path), instance, schema_doc["minimum"])
        if "maximum" in schema_doc and instance > schema_doc["maximum"]:
            return "%s: %s is above the maximum %s" % (_at(path), instance, schema_doc["maximum"])
        if "exclusiveMinimum" in schema_doc and instance <= schema_doc["exclusiveMinimum"]:
            return "%s: %s must be above %s" % (_at(path), instance,
                                                 schema_doc["exclusiveMinimum"])
    if isinstance(instance, str):
        if "minLength" in schema_doc and len(instance) < schema_doc["minLength"]:
            return "%s: must not be empty" % _at(path)
        if "pattern" in schema_doc and not _matches(schema_doc["pattern"], instance):
            return "%s: %s does not match %s" % (_at(path), _show(instance),
                                                  schema_doc["pattern"])
    if isinstance(instance, dict):
        problem = _check_object(instance, schema_doc, root, path)
        if problem:
            return problem
    if isinstance(instance, list):
        problem = _check_array(instance, schema_doc, root, path)
        if problem:
            return problem
    for sub in schema_doc.get("allOf", ()):
        problem = validate(instance, sub, root, path)
        if problem:
            return problem
    if "if" in schema_doc:
        if validate(instance, schema_doc["if"], root, path) is None:
            if "then" in schema_doc:
                problem = validate(instance, schema_doc["then"], root, path)
                if problem:
                    return problem
        elif "else" in schema_doc:
            problem = validate(instance, schema_doc["else"], root, path)
            if problem:
                return problem
    if "oneOf" in schema_doc:
        alternatives = schema_doc["oneOf"]
        problems = [validate(instance, sub, root, path) for sub in alternatives]
        passed = len([p for p in problems if p is None])
        if passed != 1:
            return "%s: %s" % (_at(path), _one_of_message(alternatives, problems, passed))
    return None


def _one_of_message(alternatives, problems, passed):
    keys = []
    for sub in alternatives:
        if isinstance(sub, dict) and list(sub) == ["required"] and len(sub["required"]) == 1:
            keys.append(sub["required"][0])
    if len(keys) == len(alternatives):
        return "needs exactly one of %s (%s)" % (
            ", ".join(repr(k) for k in keys), "none given" if not passed else "both given")
    if passed:
        return "matches more than one alternative"
    return "matches none of the alternatives: " + "; ".join(p for p in problems if p)


def _check_object(instance, schema_doc, root, path):
    for key in schema_doc.get("required", ()):
        if key not in instance:
            return "%s: missing required field %r" % (_at(path), key)
    props = schema_doc.get("properties", {})
    names = schema_doc.get("propertyNames")
    extra = schema_doc.get("additionalProperties", True)
    for key in sorted(instance):
        if names is not None:
            problem = validate(key, names, root, _join(path, key) + " (name)")
            if problem:
                return problem
        if key in props:
            problem = validate(instance[key], props[key], root, _join(path, key))
        elif extra is False:
            return "%s: unknown field %r (allowed: %s)" % (_at(path), key,
                                                            ", ".join(sorted(props)))
        else:
            problem = validate(instance[key], extra, root, _join(path, key))
        if problem:
            return problem
    return None


def _check_array(instance, schema_doc, root, path):
    if "minItems" in schema_doc and len(instance) < schema_doc["minItems"]:
        return "%s: needs at least %d items, has %d" % (_at(path), schema_doc["minItems"],
                                                       len(instance))
    if "maxItems" in schema_doc and len(instance) > schema_doc["maxItems"]:
        return "%s: at most %d items, has %d" % (_at(path), schema_doc["maxItems"],
                                                len(instance))
    prefix = schema_doc.get("prefixItems", ())
    for i, item in enumerate(instance):
        if i < len(prefix):
            sub = prefix[i]
        elif "items" in schema_doc:
            sub = schema_doc["items"]
        else:
            continue
        problem = validate(item, sub, root, _join(path, i))
        if problem:
            return problem
    return None


def _equal(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    return a == b


def _matches(pattern, text):
    import re
    return re.match(pattern, text) is not None
