#!/usr/bin/env python3
"""Checks discoverd/testdata/lldp_tlvs.json against ironic-inspector 12.5's
own LLDP parser (plugins/lldp_basic.py over common/lldp_parsers.py), so the
table the Rust test reads says what the inspector stores in
all_interfaces[].lldp_processed. Cases marked inspector_fails must make the
inspector fail (discoverd skips the bad TLV there). Run with the inspector venv:
  /opt/ironic-discoverd-dev/inspector-venv/bin/python scripts/check-lldp-tlvs.py
"""
import json
import os
import sys

from ironic_inspector.plugins import lldp_basic

here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, '..', 'discoverd', 'testdata', 'lldp_tlvs.json')) as f:
    table = json.load(f)

hook = lldp_basic.LLDPBasicProcessingHook()
bad = 0
for case in table['cases']:
    try:
        got = hook._parse_lldp_tlvs([list(t) for t in case['tlvs']], None)
    except Exception:  # binascii.Error, AttributeError: an internal error
        got = 'error'
    want = 'error' if case.get('inspector_fails') else case['expect']
    if got != want:
        bad += 1
        print('MISMATCH %s: inspector %r, table %r' % (case['case'], got, want))
print('%d cases, %d mismatches' % (len(table['cases']), bad))
sys.exit(1 if bad else 0)
