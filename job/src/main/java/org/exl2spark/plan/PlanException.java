package org.exl2spark.plan;

/** A task that cannot fit the device-memory budget (an option) however it is split; thrown before any work starts. */
public final class PlanException extends IllegalArgumentException {
    private final String module;
    private final long bytesNeeded;
    private final long budget;

    public PlanException(String task, String module, String shape, long bytesNeeded, long budget, String detail) {
        super(task + " " + module + " " + shape + " needs " + TaskPlan.bytes(bytesNeeded)
                + " of device memory at its smallest split, the budget (spark.exl2.gpu.memoryBudget) is "
                + TaskPlan.bytes(budget) + ": " + detail);
        this.module = module;
        this.bytesNeeded = bytesNeeded;
        this.budget = budget;
    }

    public String module() {
        return module;
    }

    public long bytesNeeded() {
        return bytesNeeded;
    }

    public long budget() {
        return budget;
    }
}
