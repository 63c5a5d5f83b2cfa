// hold_stream.cu: the GPU timer's blocking kernel (the idea of nvbench's blocking_kernel).
//
// Strategy: one thread, launched on the timer's stream just before the start event, spins until the host writes
// 1 into `release` (host-mapped pinned memory, read through a volatile pointer) and then exits. Everything the
// timed call enqueues behind it waits on the GPU until the call has been enqueued completely and released, so
// the interval between the start and end events holds the call's kernels and the gaps the GPU itself needs, not
// Python's launch latency. If the host does not release it within `timeout_ns` of %globaltimer (the call blocked
// on the host, e.g. it synchronises, or filled the launch queue), it writes 1 into `timed_out` and exits, so that
// nothing deadlocks and the host knows that this interval may hold host time.
extern "C" __global__ void hold_stream(const volatile int* release, volatile int* timed_out,
                                       unsigned long long timeout_ns) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    while (*release == 0) {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
        if (now - start > timeout_ns) {
            *timed_out = 1;
            __threadfence_system();
            return;
        }
        __nanosleep(500);  // poll the host flag about every microsecond, not flat out over the bus
    }
}

// spin_for: one thread that runs for `ns` nanoseconds of %globaltimer, then writes the
// span it measured itself into span_ns[0]. A kernel of known length: the GPU timer times it with held events to
// learn what the events add around a kernel (harness.hold.event_overhead).
extern "C" __global__ void spin_for(unsigned long long ns, unsigned long long* span_ns) {
    unsigned long long start, now;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
    do {
        asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    } while (now - start < ns);
    span_ns[0] = now - start;
}
