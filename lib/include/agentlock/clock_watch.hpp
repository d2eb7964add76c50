#pragma once
// Steps of the wall clock: what the judge is told of them, and a timerfd that sees them happen.

#include <agentlock/fd.hpp>
#include <agentlock/lock_file.hpp>
#include <agentlock/result.hpp>

#include <chrono>
#include <optional>

namespace agentlock {

/// One step of the wall clock (CLOCK_REALTIME) relative to the time since boot.
struct ClockStep {
    Timestamp at;                     ///< the wall clock when the step was seen, after it
    std::chrono::nanoseconds size{0}; ///< how far it moved: positive forward, negative back

    /// The wall clock just before the step, as the step moved it: `at - size`.
    Timestamp before() const { return at - size; }
};

/// The wall-clock steps a supervisor has seen while running. Steps it did not see (before it
/// started) are unknown; nothing here speaks for them.
struct ClockFacts {
    std::optional<ClockStep> last_step; ///< the latest step seen, for reasons and logs
    /// The latest of every seen step's `at` and `before()`. Any time written by the wall clock
    /// before a seen step is earlier than this, whichever way the clock moved.
    std::optional<Timestamp> stepped_until;

    /// Notes one more step.
    void record(const ClockStep& step);
    /// Whether a time written by the wall clock (a lock's acquired_at) may predate a seen step,
    /// so that it cannot be compared with a start time computed by today's clock.
    bool may_predate_a_step(Timestamp written) const;
};

/// The two clocks whose difference moves when the wall clock is stepped. Injected in tests.
class ClockReader {
public:
    virtual ~ClockReader() = default;
    virtual std::chrono::nanoseconds realtime() = 0; ///< CLOCK_REALTIME since the epoch
    virtual std::chrono::nanoseconds boottime() = 0; ///< CLOCK_BOOTTIME since boot
};

/// CLOCK_REALTIME and CLOCK_BOOTTIME themselves.
ClockReader& system_clock_reader();

/// The wall clock's offset from boot: CLOCK_REALTIME minus CLOCK_BOOTTIME. Start ticks count in
/// boot time, so this offset is what turns them into wall time; a step or slew of the wall clock
/// moves it, a suspend does not.
std::chrono::nanoseconds wall_offset(ClockReader& clocks);

/// The step between two wall offsets, seen at wall time `now`.
ClockStep step_between(std::chrono::nanoseconds offset_before, std::chrono::nanoseconds offset_now,
                       Timestamp now);

/// An offset that drifts this far from the last one seen counts as a step even when the timerfd
/// has not (yet) said so: a slew, or a step not yet read from the fd. A quarter of the margin of
/// the start-time rule, so that what goes unreported stays well inside that margin.
inline constexpr std::chrono::milliseconds k_offset_drift_as_step{500};

/// Watches CLOCK_REALTIME for steps with a timerfd (TFD_TIMER_ABSTIME|TFD_TIMER_CANCEL_ON_SET,
/// armed far in the future) whose fd an event loop can wait on for readability. Asio-free.
class ClockWatch {
public:
    /// Creates the timerfd (non-blocking, close-on-exec), arms it, then notes the offset.
    static Result<ClockWatch> open(ClockReader& clocks = system_clock_reader());

    /// The fd to wait on: readable once the wall clock has been set since the last check().
    int fd() const { return m_fd.get(); }

    /// Never blocks. A step when the fd reports one (the read fails with ECANCELED, or the far
    /// timer expired because the clock was set past it) or when the offset drifted by
    /// k_offset_drift_as_step or more; nullopt otherwise. Re-arms, and measures the size from the
    /// offset seen at the last check to the offset seen after re-arming, so a step landing
    /// between the read and the re-arm is counted in this one. Call it right before judging too,
    /// not only when the fd is readable: a step the loop has not read yet is then still seen.
    Result<std::optional<ClockStep>> check();

private:
    ClockWatch(Fd fd, ClockReader& clocks);
    Status arm();

    Fd m_fd;
    ClockReader* m_clocks;
    std::chrono::nanoseconds m_offset{0};
};

} // namespace agentlock
