package org.exl2spark.kernels;

import java.util.ArrayList;
import java.util.List;
import jcuda.NativePointerObject;
import jcuda.Pointer;

/**
 * A kernel's parameter list, in the kernel signature's order. Device pointers travel as their 64-bit addresses
 * ({@link DeviceBuffer#address}), so an offset into a buffer is plain long arithmetic.
 */
public final class KernelArgs {
    private final List<Pointer> args = new ArrayList<>();

    public KernelArgs address(long deviceAddress) {
        args.add(Pointer.to(new long[] {deviceAddress}));
        return this;
    }

    public KernelArgs matrix(DeviceMatrix m) {
        return address(m.address());
    }

    public KernelArgs buffer(DeviceBuffer b) {
        return address(b.address());
    }

    public KernelArgs i64(long v) {
        args.add(Pointer.to(new long[] {v}));
        return this;
    }

    public KernelArgs i32(int v) {
        args.add(Pointer.to(new int[] {v}));
        return this;
    }

    public KernelArgs f32(float v) {
        args.add(Pointer.to(new float[] {v}));
        return this;
    }

    Pointer pointer() {
        return Pointer.to(args.toArray(new NativePointerObject[0]));
    }
}
