#!/usr/bin/env python3
"""A diagnostic EXL2 model: BASE's tensors with every tensor whose name starts with one of PREFIXes taken from DONOR
(another EXL2 conversion of the same model), written to OUT with BASE's config and tokenizer. Evaluating such hybrids
tells which modules carry a perplexity difference between two conversions.

usage: hybrid.py OUT BASE_DIR DONOR_DIR PREFIX...
"""
import glob
import json
import os
import shutil
import struct
import sys


def tensors(directory):
    found = {}
    for path in glob.glob(directory + '/*.safetensors'):
        if os.path.basename(path) == 'dequant-reference.safetensors':
            continue
        with open(path, 'rb') as f:
            header = json.loads(f.read(struct.unpack('<Q', f.read(8))[0]))
            data = f.read()
        header.pop('__metadata__', None)
        for name, t in header.items():
            begin, end = t['data_offsets']
            found[name] = (t['dtype'], t['shape'], data[begin:end])
    return found


out, base, donor = sys.argv[1:4]
prefixes = tuple(sys.argv[4:])
merged = tensors(base)
taken = {name: t for name, t in tensors(donor).items() if name.startswith(prefixes)}
missing = [name for name in merged if name.startswith(prefixes) and name not in taken]
if missing:
    sys.exit(f'{donor} lacks {missing[:5]}')
merged.update(taken)
os.makedirs(out, exist_ok=True)
for name in ['config.json', 'tokenizer.json', 'tokenizer_config.json', 'generation_config.json']:
    if os.path.exists(os.path.join(base, name)):
        shutil.copy(os.path.join(base, name), out)
header, offset = {}, 0
for name in sorted(merged):
    dtype, shape, data = merged[name]
    header[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [offset, offset + len(data)]}
    offset += len(data)
encoded = json.dumps(header).encode()
encoded += b' ' * (-len(encoded) % 8)
with open(os.path.join(out, 'output.safetensors'), 'wb') as f:
    f.write(struct.pack('<Q', len(encoded)))
    f.write(encoded)
    for name in sorted(merged):
        f.write(merged[name][2])
print(f'{out}: {len(taken)} tensors from {donor}')
