// The parallel tree walk: several walkers (walk_internal.hpp) share one tree.
//
// The caller's thread opens and reads the root, then `threads - 1` more threads start. A walker
// runs the serial algorithm on its own stack; when it sees a walker waiting, it gives away half
// of the pending subdirectories of its shallowest frame that holds an fd (Walker::share), as a
// frame with a dup of that fd. A waiting walker takes the most recently given frame and walks
// below it as the bottom of its stack. The walk ends when no walker is busy and no frame waits.
//
// Bounds: a frame is queued only while more walkers wait than frames are queued (checked under
// the lock), so at most `threads - 1` frames (one fd each) are queued. Each walker keeps at
// most held_fds_per_walker() fds on its stack, plus its bottom frame's, one being opened and a
// dup being given away, so open directory fds stay at most threads * (held + 3) + threads - 1
// (47 for 4 threads), plus k_max_queued_visits, at any depth and width. Memory is the serial walk's
// per walker: the pending names on its stack, plus the names in queued frames.
//
// Visits are serialized (SerializedVisits): one at a time, whatever thread finds the site. A
// walker that finds the visitor busy does not wait: it queues the site with a dup of its
// .runtime fd and walks on, and whoever holds the visitor visits the queued sites before it
// lets go. Only when k_max_queued_visits sites wait does a walker block. (Judging a lock costs
// about as many syscalls as reading two directories; at 100,000 bare locks a plain mutex made
// the walkers sleep and wake for every site, slower than the serial walk.) So up to
// k_max_queued_visits more fds are open, and the fd bound below grows by that much.
//
// An exception (from the visitor, or std::bad_alloc) stops every walker and is rethrown on the
// caller's thread.

#include "walk_internal.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <fcntl.h>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace agentlock::walk_detail {

namespace {

constexpr std::size_t k_max_queued_visits = 16;

// Spreads the serial walk's fd budget over the walkers, never below 8 each (a town is about
// six levels deep, so a walker re-opens nothing there).
std::size_t held_fds_per_walker(unsigned threads) {
    return std::max<std::size_t>(8, k_held_fds / threads);
}

// The frames given away and waiting for a walker, and who is busy.
class SharedWork final : public WorkSink {
public:
    bool wants_work() const override { return m_hungry.load(std::memory_order_relaxed); }

    bool give(Frame& frame) override {
        const std::lock_guard lock(m_mutex);
        // Two walkers may have seen the same waiter: only one frame goes to it.
        if (!m_hungry.load(std::memory_order_relaxed)) {
            return false;
        }
        m_queue.push_back(std::move(frame));
        update_hungry();
        m_changed.notify_one();
        return true;
    }

    bool stopped() const override { return m_stopped.load(std::memory_order_relaxed); }

    // Blocks until a frame is there (the caller is then busy with it) or the walk is over.
    std::optional<Frame> take() {
        std::unique_lock lock(m_mutex);
        ++m_waiting;
        update_hungry();
        m_changed.wait(lock, [this] {
            return !m_queue.empty() || m_busy == 0 || m_stopped.load(std::memory_order_relaxed);
        });
        --m_waiting;
        if (m_queue.empty() || m_stopped.load(std::memory_order_relaxed)) {
            update_hungry();
            return std::nullopt;
        }
        Frame frame = std::move(m_queue.back());
        m_queue.pop_back();
        ++m_busy;
        update_hungry();
        return frame;
    }

    // The caller is done with its frame (or with the root).
    void done() {
        const std::lock_guard lock(m_mutex);
        if (--m_busy == 0) {
            m_changed.notify_all();
        }
    }

    // Abandons the walk: walkers drop their stacks, queued frames are closed, waiters return.
    void stop(std::exception_ptr error) {
        const std::lock_guard lock(m_mutex);
        if (!m_error) {
            m_error = std::move(error);
        }
        m_stopped.store(true, std::memory_order_relaxed);
        m_queue.clear();
        update_hungry();
        m_changed.notify_all();
    }

    // The first exception given to stop(), once every thread has been joined.
    std::exception_ptr error() const { return m_error; }

private:
    // Under m_mutex.
    void update_hungry() {
        const bool hungry = !m_stopped.load(std::memory_order_relaxed) &&
                            m_waiting > static_cast<unsigned>(m_queue.size());
        m_hungry.store(hungry, std::memory_order_relaxed);
    }

    std::mutex m_mutex;
    std::condition_variable m_changed;
    std::vector<Frame> m_queue; // taken from the back
    unsigned m_waiting = 0;
    unsigned m_busy = 1; // the caller's walker starts busy with the root
    std::atomic<bool> m_hungry{false};
    std::atomic<bool> m_stopped{false};
    std::exception_ptr m_error;
};

// Calls the visitor one site at a time without making walkers wait for each other (see the
// top of this file).
class SerializedVisits {
public:
    explicit SerializedVisits(const LockVisitor& visit) : m_visit(visit) {}

    void visit(const LockSite& site) {
        std::unique_lock turn(m_turn, std::try_to_lock);
        if (!turn.owns_lock()) {
            if (!enqueue(site)) {
                turn.lock(); // the queue is full: wait for our turn
                m_visit(site);
            } else if (!turn.try_lock()) {
                return; // the holder took the turn after we queued: it will see the site
            }
        } else {
            m_visit(site);
        }
        // We hold the turn: visit what others queued, and look again after letting go, since a
        // site queued between our last look and the unlock is ours to visit.
        for (;;) {
            drain();
            turn.unlock();
            if (empty() || !turn.try_lock()) {
                return;
            }
        }
    }

private:
    struct Queued {
        std::string worker;
        std::string lock_path;
        Fd runtime;
    };

    bool enqueue(const LockSite& site) {
        {
            const std::lock_guard lock(m_queue_mutex);
            if (m_queue.size() >= k_max_queued_visits) {
                return false;
            }
        }
        Fd runtime(::fcntl(site.runtime_fd, F_DUPFD_CLOEXEC, 0));
        if (!runtime) {
            return false; // out of fds: visit it ourselves
        }
        const std::lock_guard lock(m_queue_mutex);
        m_queue.push_back(Queued{site.worker, site.lock_path, std::move(runtime)});
        return true;
    }

    bool empty() {
        const std::lock_guard lock(m_queue_mutex);
        return m_queue.empty();
    }

    // Under the turn.
    void drain() {
        for (;;) {
            Queued next;
            {
                const std::lock_guard lock(m_queue_mutex);
                if (m_queue.empty()) {
                    return;
                }
                next = std::move(m_queue.front());
                m_queue.pop_front();
            }
            LockSite site;
            site.worker = std::move(next.worker);
            site.lock_path = std::move(next.lock_path);
            site.runtime_fd = next.runtime.get();
            m_visit(site);
        }
    }

    const LockVisitor& m_visit;
    std::mutex m_turn; // held while the visitor runs
    std::mutex m_queue_mutex;
    std::deque<Queued> m_queue;
};

// Walks frames taken from `shared` until the walk is over.
void take_and_walk(Walker& walker, SharedWork& shared, dev_t root_dev) {
    while (std::optional<Frame> frame = shared.take()) {
        try {
            walker.adopt(std::move(*frame), root_dev);
            walker.walk();
        } catch (...) {
            shared.stop(std::current_exception());
        }
        shared.done();
    }
}

} // namespace

Result<WalkStats> walk_locks_parallel(const std::string& root, const WalkOptions& options,
                                      const LockVisitor& visit, unsigned threads) {
    SerializedVisits visits(visit);
    const LockVisitor serialized = [&visits](const LockSite& site) { visits.visit(site); };
    SharedWork shared;
    const std::size_t held = held_fds_per_walker(threads);
    std::vector<std::unique_ptr<Walker>> walkers;
    for (unsigned i = 0; i < threads; ++i) {
        walkers.push_back(std::make_unique<Walker>(options, serialized, held, &shared));
    }
    Walker& first = *walkers.front();
    Status started = first.start(root);
    if (!started) {
        return started.error();
    }
    const dev_t root_dev = first.root_dev();

    std::vector<std::jthread> pool;
    {
        // Walkers that could not get a thread simply never run: the others do their share.
        try {
            for (unsigned i = 1; i < threads; ++i) {
                Walker& walker = *walkers[i];
                pool.emplace_back(
                    [&walker, &shared, root_dev] { take_and_walk(walker, shared, root_dev); });
            }
        } catch (const std::system_error&) {
        }
    }
    try {
        first.walk();
    } catch (...) {
        shared.stop(std::current_exception());
    }
    shared.done();
    take_and_walk(first, shared, root_dev);
    for (auto& t : pool) {
        t.join();
    }
    if (shared.error()) {
        std::rethrow_exception(shared.error());
    }
    WalkStats stats = std::move(first.stats());
    for (std::size_t i = 1; i < walkers.size(); ++i) {
        merge_stats(stats, std::move(walkers[i]->stats()));
    }
    return stats;
}

} // namespace agentlock::walk_detail
