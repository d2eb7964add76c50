#include <agentlock/duration.hpp>
#include <agentlock/fleet.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <tuple>

namespace agentlock {

namespace json = boost::json;

namespace {

std::string string_of(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

std::int64_t int_of(const json::object& o, std::string_view key) {
    const json::value* v = o.if_contains(key);
    return v != nullptr && v->is_int64() ? v->get_int64() : 0;
}

std::optional<json::object> parse_object(std::string_view text) {
    boost::system::error_code ec;
    json::value v = json::parse(text, ec);
    if (ec || !v.is_object()) {
        return std::nullopt;
    }
    return std::move(v.get_object());
}

std::string millis(std::chrono::milliseconds d) {
    return format_duration(std::chrono::duration_cast<std::chrono::seconds>(d));
}

} // namespace

std::string encode_presence(const HostPresence& p) {
    json::array roots;
    for (const auto& r : p.roots) {
        roots.emplace_back(r);
    }
    return json::serialize(json::object{{"host", p.host},
                                        {"boot_id", p.boot_id},
                                        {"pid", p.pid},
                                        {"version", p.version},
                                        {"roots", std::move(roots)},
                                        {"started_at", p.started_at}});
}

std::optional<HostPresence> decode_presence(std::string_view text) {
    auto o = parse_object(text);
    if (!o) {
        return std::nullopt;
    }
    HostPresence p;
    p.host = string_of(*o, "host");
    p.boot_id = string_of(*o, "boot_id");
    p.pid = int_of(*o, "pid");
    p.version = string_of(*o, "version");
    p.started_at = string_of(*o, "started_at");
    if (const json::value* roots = o->if_contains("roots"); roots && roots->is_array()) {
        for (const auto& r : roots->get_array()) {
            if (r.is_string()) {
                p.roots.emplace_back(r.get_string());
            }
        }
    }
    return p;
}

std::string encode_claim(const FleetClaim& c) {
    return json::serialize(json::object{
        {"host", c.host}, {"worker", c.worker}, {"session_id", c.session_id}, {"pid", c.pid}});
}

std::optional<FleetClaim> decode_claim(std::string_view text) {
    auto o = parse_object(text);
    if (!o) {
        return std::nullopt;
    }
    FleetClaim c;
    c.host = string_of(*o, "host");
    c.worker = string_of(*o, "worker");
    c.session_id = string_of(*o, "session_id");
    c.pid = int_of(*o, "pid");
    if (c.host.empty() || c.worker.empty()) {
        return std::nullopt;
    }
    return c;
}

std::string host_key(const std::string& prefix, const std::string& host) {
    return prefix + "/hosts/" + host;
}

std::string claim_key(const std::string& prefix, const FleetClaim& claim) {
    return prefix + "/claims/" + claim.host + (claim.worker.starts_with('/') ? "" : "/") +
           claim.worker;
}

std::vector<CrossHostCollision>
find_cross_host_collisions(const std::string& local_host, const std::vector<FleetClaim>& local,
                           const std::vector<FleetClaim>& published) {
    std::map<std::string, const FleetClaim*> by_worker;
    std::multimap<std::string, const FleetClaim*> by_session;
    for (const auto& c : local) {
        by_worker.emplace(c.worker, &c);
        if (!c.session_id.empty()) {
            by_session.emplace(c.session_id, &c);
        }
    }
    std::vector<CrossHostCollision> out;
    for (const auto& remote : published) {
        if (remote.host == local_host) {
            continue;
        }
        if (auto it = by_worker.find(remote.worker); it != by_worker.end()) {
            out.push_back({"worker", *it->second, remote});
        }
        if (!remote.session_id.empty()) {
            auto [first, last] = by_session.equal_range(remote.session_id);
            for (auto it = first; it != last; ++it) {
                out.push_back({"session", *it->second, remote});
            }
        }
    }
    std::sort(out.begin(), out.end(), [](const CrossHostCollision& a, const CrossHostCollision& b) {
        return std::tie(a.kind, a.local.worker, a.remote.host, a.remote.worker) <
               std::tie(b.kind, b.local.worker, b.remote.host, b.remote.worker);
    });
    return out;
}

std::string_view to_string(HostSight sight) {
    switch (sight) {
    case HostSight::live:
        return "live";
    case HostSight::missing:
        return "missing";
    case HostSight::gone:
        return "gone";
    case HostSight::unknown:
        return "unknown";
    }
    return "unknown";
}

void HostGoneClock::saw(FleetTime now, const std::set<std::string>& live) {
    m_last_read = now;
    m_live = live;
    for (const auto& host : m_watched) {
        if (live.contains(host)) {
            m_missing_since.erase(host);
        } else {
            m_missing_since.emplace(host, now); // keeps the first time it was seen missing
        }
        const HostSight state = sight_of(host, now).state;
        auto [it, fresh] = m_last_state.emplace(host, state);
        if (!fresh && it->second != state) {
            it->second = state;
            m_changed.push_back(host);
        }
    }
}

void HostGoneClock::lost_sight(FleetTime) {
    m_last_read.reset();
    m_missing_since.clear(); // a host cannot be proven gone while we could not see
}

HostGoneClock::Sight HostGoneClock::sight_of(const std::string& host, FleetTime now) {
    m_watched.insert(host);
    if (!m_last_read || now - *m_last_read > m_max_age) {
        return {HostSight::unknown, {}};
    }
    if (m_live.contains(host)) {
        return {HostSight::live, {}};
    }
    auto it = m_missing_since.find(host);
    if (it == m_missing_since.end()) {
        return {HostSight::unknown, {}}; // not measured yet: asked after the last read
    }
    const auto missing =
        std::chrono::duration_cast<std::chrono::milliseconds>(*m_last_read - it->second);
    return {missing >= m_gone_after ? HostSight::gone : HostSight::missing, missing};
}

FleetMember::FleetMember(FleetConfig config, HostPresence presence, FleetLogFn log,
                         FleetNudgeFn nudge)
    : m_config(std::move(config)), m_presence(std::move(presence)), m_log(std::move(log)),
      m_nudge(std::move(nudge)), m_client(m_config),
      // A view older than two rounds plus a request time-out is no view.
      m_clock(m_config.host_gone_after, m_config.lease_ttl * 2 / 3 + m_config.request_timeout * 2) {
}

FleetMember::~FleetMember() {
    stop();
}

void FleetMember::start() {
    m_thread = std::thread([this] { run(); });
}

void FleetMember::stop() {
    {
        const std::lock_guard lock(m_mutex);
        m_stop = true;
    }
    m_wake.notify_all();
    if (m_thread.joinable()) {
        m_thread.join();
    }
}

void FleetMember::set_local_claims(std::vector<FleetClaim> claims) {
    std::sort(claims.begin(), claims.end(),
              [](const FleetClaim& a, const FleetClaim& b) { return a.worker < b.worker; });
    const std::lock_guard lock(m_mutex);
    if (claims != m_local_claims) {
        m_local_claims = std::move(claims);
        m_claims_dirty = true;
    }
}

EtcdTraffic FleetMember::traffic() const {
    const std::lock_guard lock(m_mutex);
    return m_traffic;
}

Judgement FleetMember::judge_foreign(const LockInfo& lock, const Judgement& foreign, bool confirm) {
    HostGoneClock::Sight sight;
    {
        const std::lock_guard guard(m_mutex);
        sight = m_clock.sight_of(lock.hostname, std::chrono::steady_clock::now());
    }
    const std::string& host = lock.hostname;
    switch (sight.state) {
    case HostSight::live:
        return {Verdict::foreign, foreign.reason + "; host " + host +
                                      " is in the fleet: its own agentlockd judges this lock"};
    case HostSight::unknown:
        return {Verdict::foreign, foreign.reason + "; host " + host +
                                      "'s presence is unknown (etcd not read lately): kept"};
    case HostSight::missing:
        return {Verdict::foreign, foreign.reason + "; host " + host +
                                      " has had no presence key in etcd for " +
                                      millis(sight.missing_for) + " of " +
                                      millis(m_config.host_gone_after) + ": kept"};
    case HostSight::gone:
        break;
    }
    Judgement gone{Verdict::host_gone, "host " + host + " has had no presence key in etcd for " +
                                           millis(sight.missing_for) + " (host_gone_after " +
                                           millis(m_config.host_gone_after) +
                                           "), with etcd answering all along"};
    if (!confirm) {
        return gone;
    }
    // The re-check before a removal asks etcd itself, now, on this thread.
    const std::lock_guard guard(m_confirm_mutex);
    if (!m_confirm_client) {
        m_confirm_client = std::make_unique<EtcdClient>(m_config);
    }
    auto now = m_confirm_client->get(host_key(m_config.prefix, host));
    if (!now) {
        return {Verdict::foreign, foreign.reason + "; could not confirm host " + host +
                                      " is gone (etcd: " + now.error().message + "): kept"};
    }
    if (!now->kvs.empty()) {
        return {Verdict::foreign, foreign.reason + "; host " + host + " is back in the fleet"};
    }
    gone.reason += "; confirmed at removal";
    return gone;
}

void FleetMember::run() {
    const auto period =
        std::max<std::chrono::milliseconds>(m_config.lease_ttl / 3, std::chrono::milliseconds(200));
    m_log(LogLevel::info, "fleet.started",
          {{"host", m_presence.host},
           {"etcd",
            [this] {
                std::string s;
                for (const auto& e : m_config.etcd) {
                    s += (s.empty() ? "" : ",") + e;
                }
                return s;
            }()},
           {"prefix", m_config.prefix},
           {"lease_ttl", format_duration(m_config.lease_ttl)},
           {"host_gone_after", format_duration(m_config.host_gone_after)},
           {"remove_host_gone", m_config.remove_host_gone ? "true" : "false"}});
    for (;;) {
        const FleetTime started = std::chrono::steady_clock::now();
        std::string error;
        const bool ok = round(started, error);
        std::vector<std::string> changed;
        {
            const std::lock_guard lock(m_mutex);
            m_traffic = m_client.traffic();
            if (ok) {
                m_clock.saw(std::chrono::steady_clock::now(), m_last_hosts);
            } else {
                m_clock.lost_sight(std::chrono::steady_clock::now());
            }
            changed = m_clock.take_changes();
        }
        if (!ok && m_reachable) {
            m_reachable = false;
            m_log(LogLevel::warn, "fleet.unreachable",
                  {{"error", error},
                   {"kept", "every foreign lock stays foreign; the host-gone clocks restart"}});
        } else if (ok && !m_reachable) {
            m_reachable = true;
            m_log(LogLevel::info, "fleet.recovered", {{"etcd", m_client.endpoint()}});
        }
        for (const auto& host : changed) {
            HostGoneClock::Sight sight;
            {
                const std::lock_guard lock(m_mutex);
                sight = m_clock.sight_of(host, std::chrono::steady_clock::now());
            }
            const char* event = sight.state == HostSight::gone      ? "fleet.host_gone"
                                : sight.state == HostSight::missing ? "fleet.host_missing"
                                                                    : "fleet.host_back";
            m_log(sight.state == HostSight::live ? LogLevel::info : LogLevel::warn, event,
                  {{"host", host}, {"missing_for", millis(sight.missing_for)}});
            if (sight.state == HostSight::gone || sight.state == HostSight::live) {
                m_nudge("host " + host + " " + std::string(to_string(sight.state)));
            }
        }
        std::unique_lock lock(m_mutex);
        if (m_wake.wait_until(lock, started + period, [this] { return m_stop; })) {
            return;
        }
    }
}

bool FleetMember::round(FleetTime, std::string& error) {
    const std::string own_key = host_key(m_config.prefix, m_presence.host);
    if (m_lease != 0) {
        auto ttl = m_client.keep_alive(m_lease);
        if (!ttl) {
            error = ttl.error().message;
            return false;
        }
        if (*ttl <= 0) {
            m_log(LogLevel::warn, "fleet.lease_lost",
                  {{"lease", std::to_string(m_lease)},
                   {"action", "a new lease; the host key and claims are written again"}});
            m_lease = 0;
        }
    }
    if (m_lease == 0) {
        auto lease = m_client.grant_lease(m_config.lease_ttl);
        if (!lease) {
            error = lease.error().message;
            return false;
        }
        m_published.clear();
        m_claims_revision = -1;
        if (Status st = m_client.put(own_key, encode_presence(m_presence), *lease); !st) {
            error = st.error().message;
            return false;
        }
        m_lease = *lease;
        m_log(LogLevel::info, "fleet.joined",
              {{"host", m_presence.host},
               {"lease", std::to_string(m_lease)},
               {"etcd", m_client.endpoint()}});
    }
    // Publishing may take a third of a round; the rest waits for the next, so that the lease
    // is renewed in time even when thousands of claims appear at once.
    if (!publish_claims(std::chrono::steady_clock::now() + m_config.lease_ttl / 9, error)) {
        return false;
    }
    const std::string hosts_prefix = m_config.prefix + "/hosts/";
    auto hosts = m_client.range_prefix(hosts_prefix);
    if (!hosts) {
        error = hosts.error().message;
        return false;
    }
    std::set<std::string> live;
    for (const auto& kv : hosts->kvs) {
        live.insert(kv.key.substr(hosts_prefix.size()));
    }
    if (!live.contains(m_presence.host)) {
        // Our key went while our lease lives (deleted by hand): write it again next round.
        m_lease = 0;
    }
    {
        const std::lock_guard lock(m_mutex);
        m_last_hosts = std::move(live);
    }
    // Every claim of every host is the fleet's biggest read: only when the store changed, and
    // at most every 3 * lease_ttl (collisions are logged that much later at worst).
    const FleetTime now = std::chrono::steady_clock::now();
    if (hosts->revision != m_claims_revision &&
        (!m_claims_read_at || now - *m_claims_read_at >= m_config.lease_ttl * 3)) {
        m_claims_read_at = now;
        bool ok = true;
        read_claims(hosts->revision, error, ok);
        if (!ok) {
            return false;
        }
    }
    return true;
}

bool FleetMember::publish_claims(FleetTime deadline, std::string& error) {
    std::vector<FleetClaim> claims;
    {
        const std::lock_guard lock(m_mutex);
        if (!m_claims_dirty && !m_published.empty()) {
            return true;
        }
        claims = m_local_claims;
        m_claims_dirty = false;
    }
    std::map<std::string, std::string> wanted;
    for (const auto& c : claims) {
        wanted.emplace(claim_key(m_config.prefix, c), encode_claim(c));
    }
    std::vector<EtcdWrite> writes;
    for (const auto& [key, value] : wanted) {
        auto it = m_published.find(key);
        if (it == m_published.end() || it->second != value) {
            writes.push_back({key, value, m_lease, false});
        }
    }
    for (const auto& [key, value] : m_published) {
        if (!wanted.contains(key)) {
            writes.push_back({key, {}, 0, true});
        }
    }
    std::size_t done = 0;
    while (done < writes.size() && (done == 0 || std::chrono::steady_clock::now() < deadline)) {
        const std::size_t first = done;
        const std::size_t last = std::min(writes.size(), first + k_etcd_max_txn_ops);
        done = last;
        std::vector<EtcdWrite> batch(writes.begin() + static_cast<std::ptrdiff_t>(first),
                                     writes.begin() + static_cast<std::ptrdiff_t>(last));
        if (Status st = m_client.write_batch(batch); !st) {
            error = st.error().message;
            const std::lock_guard lock(m_mutex);
            m_claims_dirty = true; // try again next round
            return false;
        }
        for (const auto& w : batch) {
            if (w.erase) {
                m_published.erase(w.key);
            } else {
                m_published[w.key] = w.value;
            }
        }
    }
    if (done < writes.size()) {
        const std::lock_guard lock(m_mutex);
        m_claims_dirty = true;
    }
    return true;
}

void FleetMember::read_claims(std::int64_t revision, std::string& error, bool& ok) {
    const std::string claims_prefix = m_config.prefix + "/claims/";
    auto claims = m_client.range_prefix(claims_prefix);
    if (!claims) {
        error = claims.error().message;
        ok = false;
        return;
    }
    m_claims_revision = std::max(revision, claims->revision);
    std::vector<FleetClaim> published;
    published.reserve(claims->kvs.size());
    for (const auto& kv : claims->kvs) {
        if (auto c = decode_claim(kv.value)) {
            published.push_back(std::move(*c));
        }
    }
    std::vector<FleetClaim> local;
    {
        const std::lock_guard lock(m_mutex);
        local = m_local_claims;
    }
    std::set<std::string> now_seen;
    for (const auto& c : find_cross_host_collisions(m_presence.host, local, published)) {
        const std::string id =
            c.kind + "|" + c.local.worker + "|" + c.remote.host + "|" + c.remote.worker;
        now_seen.insert(id);
        if (m_collisions_logged.contains(id)) {
            continue;
        }
        m_log(LogLevel::warn, "collision.cross_host",
              {{"kind", c.kind},
               {"claim", c.kind == "worker" ? c.local.worker : c.local.session_id},
               {"host", c.local.host},
               {"worker", c.local.worker},
               {"session_id", c.local.session_id},
               {"pid", std::to_string(c.local.pid)},
               {"other_host", c.remote.host},
               {"other_worker", c.remote.worker},
               {"other_session_id", c.remote.session_id},
               {"other_pid", std::to_string(c.remote.pid)}});
    }
    m_collisions_logged = std::move(now_seen);
}

} // namespace agentlock
