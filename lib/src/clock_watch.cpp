#include <agentlock/clock_watch.hpp>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <ctime>
#include <sys/timerfd.h>
#include <unistd.h>

namespace agentlock {

namespace {

// Far enough that only a clock set past it makes the timer expire; check() counts that as a
// step too.
constexpr std::chrono::seconds k_far_future{100LL * 365 * 24 * 3600};

std::chrono::nanoseconds read_clock(clockid_t clock) {
    timespec ts{};
    if (::clock_gettime(clock, &ts) != 0) {
        // Both clocks exist on every kernel we run on (BOOTTIME since 2.6.39).
        return std::chrono::nanoseconds(0);
    }
    return std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec);
}

class SystemClockReader final : public ClockReader {
public:
    std::chrono::nanoseconds realtime() override { return read_clock(CLOCK_REALTIME); }
    std::chrono::nanoseconds boottime() override { return read_clock(CLOCK_BOOTTIME); }
};

std::chrono::nanoseconds magnitude(std::chrono::nanoseconds d) {
    return d < std::chrono::nanoseconds(0) ? -d : d;
}

} // namespace

void ClockFacts::record(const ClockStep& step) {
    last_step = step;
    const Timestamp latest = std::max(step.at, step.before());
    stepped_until = stepped_until ? std::max(*stepped_until, latest) : latest;
}

bool ClockFacts::may_predate_a_step(Timestamp written) const {
    return stepped_until && written < *stepped_until;
}

ClockReader& system_clock_reader() {
    static SystemClockReader reader;
    return reader;
}

std::chrono::nanoseconds wall_offset(ClockReader& clocks) {
    // Boot time first: the pair then errs towards a later offset by the time between the reads,
    // a few hundred nanoseconds, far below k_offset_drift_as_step.
    const std::chrono::nanoseconds boot = clocks.boottime();
    return clocks.realtime() - boot;
}

ClockStep step_between(std::chrono::nanoseconds offset_before, std::chrono::nanoseconds offset_now,
                       Timestamp now) {
    return ClockStep{now, offset_now - offset_before};
}

ClockWatch::ClockWatch(Fd fd, ClockReader& clocks) : m_fd(std::move(fd)), m_clocks(&clocks) {}

Result<ClockWatch> ClockWatch::open(ClockReader& clocks) {
    Fd fd(::timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK | TFD_CLOEXEC));
    if (!fd) {
        return io_error("timerfd_create", "CLOCK_REALTIME", errno);
    }
    ClockWatch watch(std::move(fd), clocks);
    if (Status armed = watch.arm(); !armed) {
        return armed.error();
    }
    // After arming: a step between the two is then seen by the fd (as a step of about zero),
    // rather than by neither.
    watch.m_offset = wall_offset(clocks);
    return watch;
}

Status ClockWatch::arm() {
    timespec now{};
    if (::clock_gettime(CLOCK_REALTIME, &now) != 0) {
        return io_error("clock_gettime", "CLOCK_REALTIME", errno);
    }
    itimerspec spec{};
    spec.it_value.tv_sec = now.tv_sec + static_cast<time_t>(k_far_future.count());
    if (::timerfd_settime(m_fd.get(), TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET, &spec,
                          nullptr) != 0) {
        return io_error("timerfd_settime", "CLOCK_REALTIME", errno);
    }
    return {};
}

Result<std::optional<ClockStep>> ClockWatch::check() {
    bool signalled = false;
    while (true) {
        std::uint64_t expirations = 0;
        const ssize_t n = ::read(m_fd.get(), &expirations, sizeof expirations);
        if (n == static_cast<ssize_t>(sizeof expirations)) {
            signalled = true; // the clock was set past the far timer
            break;
        }
        if (n >= 0) {
            return io_error("read", "timerfd", EIO); // a timerfd reads 8 bytes or fails
        }
        const int err = errno;
        if (err == EINTR) {
            continue;
        }
        if (err == ECANCELED) {
            signalled = true;
            break;
        }
        if (err == EAGAIN) {
            break;
        }
        return io_error("read", "timerfd", err);
    }
    if (signalled) {
        if (Status armed = arm(); !armed) {
            return armed.error();
        }
    }
    const std::chrono::nanoseconds offset = wall_offset(*m_clocks);
    if (!signalled && magnitude(offset - m_offset) < k_offset_drift_as_step) {
        return std::optional<ClockStep>{};
    }
    const ClockStep step = step_between(m_offset, offset, Timestamp(m_clocks->realtime()));
    m_offset = offset;
    return std::optional<ClockStep>{step};
}

} // namespace agentlock
