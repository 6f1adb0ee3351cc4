#!/usr/bin/env python3
"""Checks discoverd/testdata/root_device_hints.json against ironic-inspector
12.5's own root device hint code (common/device_hints.py), so the table the
Rust test reads says what the inspector does. Run with the inspector venv:
  /opt/ironic-discoverd-dev/inspector-venv/bin/python scripts/check-root-device-hints.py
"""
import json
import os
import sys

from ironic_inspector.common import device_hints

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, '..', 'discoverd', 'testdata', 'root_device_hints.json')) as f:
    table = json.load(f)

bad = 0
for case in table['cases']:
    hints = case['hints']
    try:
        if not device_hints.parse_root_device_hints(hints):
            got = 'no-hints'
        else:
            dev = device_hints.match_root_device_hints(table['disks'], hints)
            got = dev['name'] if dev else None
    except Exception:  # ValueError, TypeError and pyparsing's errors alike
        got = 'error'
    if got != case['expect']:
        bad += 1
        print('MISMATCH %s: inspector %r, table %r' % (json.dumps(hints), got, case['expect']))
print('%d cases, %d mismatches' % (len(table['cases']), bad))
sys.exit(1 if bad else 0)
