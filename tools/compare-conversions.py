"""Compares two exl2 conversions: measurement.json candidate errors (per block: largest relative difference, pairs
of candidates ranked alike) and the output tensors (identical, or how many elements differ and by how much).
Usage (docs/BENCHMARKS.md): python3 tools/compare-conversions.py MEAS_A MEAS_B [A.safetensors B.safetensors]..."""
import json, struct, sys
import numpy as np

DT = {"F16": np.float16, "F32": np.float32, "I32": np.int32, "I16": np.int16, "U8": np.uint8, "BF16": np.uint16, "I64": np.int64}

def read(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        a, b = info["data_offsets"]
        out[name] = (info["dtype"], np.frombuffer(data[a:b], dtype=DT[info["dtype"]]).reshape(info["shape"]))
    return out

def measurements(path):
    return json.load(open(path))["measurement"]

def compare_measurement(cpu, gpu):
    worst = 0.0; rank_pairs = rank_same = 0; rows = []
    for block in [b for b in cpu if cpu[b] is not None]:
        ec = np.array([1 - c["accuracy"] for c in cpu[block]]); eg = np.array([1 - c["accuracy"] for c in gpu[block]])
        bits_same = [c["total_bits"] for c in cpu[block]] == [c["total_bits"] for c in gpu[block]]
        rel = np.abs(eg - ec) / np.abs(ec)
        worst = max(worst, rel.max())
        n = len(ec)
        for i in range(n):
            for j in range(i + 1, n):
                rank_pairs += 1
                rank_same += (ec[i] < ec[j]) == (eg[i] < eg[j])
        rows.append((block, n, bits_same, rel.max(), np.median(rel)))
    return worst, rank_pairs, rank_same, rows

if __name__ == "__main__":
    cmeas, gmeas = measurements(sys.argv[1]), measurements(sys.argv[2])
    worst, pairs, same, rows = compare_measurement(cmeas, gmeas)
    print(f"measurement: {len(rows)} blocks, candidate error |B-A|/A max {worst:.2e}; "
          f"pairs ranked the same {same}/{pairs}")
    for r in rows:
        print(f"  {r[0]:28s} {r[1]} candidates, bits same {r[2]}, rel diff max {r[3]:.2e} median {r[4]:.2e}")
    for cpu_file, gpu_file in zip(sys.argv[3::2], sys.argv[4::2]):
        c, g = read(cpu_file), read(gpu_file)
        assert c.keys() == g.keys(), (set(c) ^ set(g))
        print(f"\n{cpu_file} vs {gpu_file}: {len(c)} tensors")
        identical = 0; strategy_diff = []; lines = []
        for name in sorted(c):
            (dc, ac), (dg, ag) = c[name], g[name]
            if ac.shape != ag.shape or dc != dg:
                lines.append(f"  {name}: shape/dtype differs {dc}{ac.shape} vs {dg}{ag.shape}")
                if name.endswith(".q_groups"):
                    strategy_diff.append(name)
                continue
            if np.array_equal(ac.view(np.uint8), ag.view(np.uint8)):
                identical += 1
                continue
            if name.endswith(".q_groups"):
                strategy_diff.append(name)
            if dc in ("F16", "F32"):
                x, y = ac.astype(np.float64), ag.astype(np.float64)
                d = np.abs(x - y)
                lines.append(f"  {name} {dc}{list(ac.shape)}: max |diff| {d.max():.3e} ({d.max() / max(np.abs(x).max(), 1e-30):.2e} of max), "
                             f"{np.count_nonzero(d)}/{d.size} differ")
            else:
                lines.append(f"  {name} {dc}{list(ac.shape)}: {np.count_nonzero(ac != ag)}/{ac.size} elements differ")
        print(f"  identical: {identical}/{len(c)}; linears with another bit allocation (q_groups differ): {len(strategy_diff)}")
        for s in strategy_diff:
            print(f"    {s}")
        print("\n".join(lines))
