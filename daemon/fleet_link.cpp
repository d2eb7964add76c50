#include "fleet_link.hpp"

#include <agentlock/lock_file.hpp>
#include <agentlock/process_probe.hpp>

#include <boost/asio/post.hpp>

#include <chrono>
#include <unistd.h>
#include <vector>

namespace agentlock::daemon {

void FleetLink::join(const Config& config, boost::asio::io_context& io, EventLog& log,
                     PassWanted pass_wanted) {
    if (!config.fleet) {
        return;
    }
    const HostFacts host = read_host_facts();
    m_hostname = host.hostname;
    HostPresence presence;
    presence.host = host.hostname;
    presence.boot_id = host.boot_id;
    presence.pid = ::getpid();
    presence.version = AGENTLOCK_VERSION;
    presence.roots = config.roots;
    presence.started_at = format_rfc3339(
        std::chrono::time_point_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now()));
    m_member = std::make_unique<FleetMember>(
        *config.fleet, std::move(presence),
        [&io, &log](LogLevel level, std::string event, Fields fields) {
            boost::asio::post(io,
                              [&log, level, event = std::move(event),
                               fields = std::move(fields)]() { log.log(level, event, fields); });
        },
        [&io, pass_wanted = std::move(pass_wanted)](std::string reason) {
            boost::asio::post(io, [pass_wanted, reason = std::move(reason)]() mutable {
                pass_wanted(std::move(reason));
            });
        });
    m_member->start();
}

void FleetLink::publish(const LockTable& table) {
    if (!m_member) {
        return;
    }
    std::vector<FleetClaim> claims;
    table.for_each_worker([&](const std::string& worker) {
        const LockSummary* s = table.find(worker);
        if (s != nullptr && s->parsed && s->action != LockAction::removed &&
            (s->verdict == Verdict::live || s->verdict == Verdict::orphaned ||
             s->verdict == Verdict::held_by_session)) {
            claims.push_back({m_hostname, worker, s->session_id.str(), s->pid});
        }
    });
    m_member->set_local_claims(std::move(claims));
}

void FleetLink::stop() {
    if (m_member) {
        m_member->stop();
    }
}

} // namespace agentlock::daemon
