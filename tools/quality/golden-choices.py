#!/usr/bin/env python3
"""Writes a measurement.json that makes `exl2 convert -m` quantize with the settings ExLlamaV2 chose for its golden
4.0 bpw tiny model: every block offers its cheapest candidate, the golden one and the most expensive one, so under
the 4.0 bpw budget the optimizer's only best choice is the golden one. The golden candidate of a block is the one whose
total_bits equals the bits of that block's tensors in the golden output.safetensors (unique for the tiny model).

usage: golden-choices.py OUT.json [GOLDEN_MODEL_DIR] [MEASUREMENT_JSON]
"""
import json
import struct
import sys

out = sys.argv[1]
golden = sys.argv[2] if len(sys.argv) > 2 else '../shared/golden/exllamav2-0.2.7-tiny-4.0bpw'
measurement = sys.argv[3] if len(sys.argv) > 3 else '../shared/golden/exllamav2-0.2.7-tiny-measurement.json'

with open(golden + '/output.safetensors', 'rb') as f:
    header = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))
dtype_bytes = {'I32': 4, 'F16': 2, 'I16': 2}
block_bits = {}
for name, t in header.items():
    if name == '__metadata__' or not name.rsplit('.', 1)[-1].startswith('q_'):
        continue
    block = name.rsplit('.', 2)[0]  # model.layers.N.self_attn / .mlp
    elements = 1
    for d in t['shape']:
        elements *= d
    block_bits[block] = block_bits.get(block, 0) + elements * dtype_bytes[t['dtype']] * 8

m = json.load(open(measurement))
chosen = {}
for key, candidates in m['measurement'].items():
    if candidates is None:
        chosen[key] = None
        continue
    match = [i for i, c in enumerate(candidates) if c['total_bits'] == block_bits[key]]
    if len(match) != 1:
        sys.exit(f'{key}: {len(match)} candidates have the golden block\'s {block_bits[key]} bits')
    print(f'{key}: golden candidate {match[0]}')
    chosen[key] = [candidates[i] for i in sorted({0, match[0], len(candidates) - 1})]
json.dump({'measurement': chosen, 'last_module_idx': m['last_module_idx']}, open(out, 'w'), indent=4)
