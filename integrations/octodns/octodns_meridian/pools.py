"""octoDNS dynamic records <-> Meridian geo pools.

A dynamic A (and/or AAAA) record at a name is one Meridian pool of policy `geo`:
- each octoDNS pool is a datacenter of the same name; its values are the datacenter's
  endpoints with their weights (policy `weighted`); a value's status `up` is the endpoint's
  `force = "up"`, `down` its `drain`, `obey` neither (the pool's health check decides);
- each rule is the datacenter order of the places it names (`map.continent`, `map.country`,
  `map.subdivision`, `nets` for subnets): its pool, then that pool's `fallback` chain, then the
  record's own values (a last datacenter, `octodns-values`, whose endpoints are always up); the
  catch-all rule is `map.default` and `default` alike;
- `octodns.healthcheck` is the pool's `check`; the record's TTL the pool's.
Datacenters are listed in rule order, so that the rules read back in the order written. A
Meridian pool that cannot be written this way (sticky, least load, latency weights, nearest by
distance, …) is not read as a record: `unsupported` says why.
"""

from octodns.record.geo import GeoCodes

VALUES = 'octodns-values'
PROTOCOLS = {'HTTP': 'http', 'HTTPS': 'https', 'TCP': 'tcp'}
DATACENTER_POLICIES = ('weighted', 'weighted_random', 'round_robin')


class Unsupported(Exception):
    """A record or pool one side cannot express."""


def to_pool(records, existing=None):
    """The Meridian pool for the dynamic records at one name (A and/or AAAA). Fields octoDNS
    does not manage (max_answers, all_down, ...) are kept from `existing`."""
    first = records[0]
    for record in records[1:]:
        if record.dynamic.rules != first.dynamic.rules:
            raise Unsupported(
                f'{first.fqdn}: the A and AAAA records have different rules; Meridian '
                'steers both families of a name with one pool'
            )
        if sorted(record.dynamic.pools) != sorted(first.dynamic.pools):
            raise Unsupported(f'{first.fqdn}: the A and AAAA records have different pools')
    rules = [r.data for r in first.dynamic.rules]
    pools = {pid: p.data for pid, p in first.dynamic.pools.items()}
    order = [r['pool'] for r in rules if 'pool' in r]
    order += sorted(p for p in pools if p not in order)
    datacenters = []
    for pid in order:
        endpoints = []
        for record in records:
            for value in record.dynamic.pools[pid].data['values']:
                endpoints.append(_endpoint(value))
        datacenters.append(_datacenter(pid, endpoints))
    values = [{'address': str(v), 'force': 'up'} for r in records for v in r.values]
    datacenters.append(_datacenter(VALUES, values))

    def chain(pid):
        seen = []
        while pid and pid not in seen:
            seen.append(pid)
            pid = pools[pid].get('fallback')
        return seen + [VALUES]

    spec = dict(existing or {})
    for key in ('datacenters', 'map', 'nets', 'default', 'endpoints', 'check', 'weights'):
        spec.pop(key, None)
    spec.update(policy='geo', ttl=first.ttl, max_datacenters=1, datacenters=datacenters)
    geo_map, nets = {}, {}
    for rule in rules:
        order = chain(rule['pool'])
        for subnet in rule.get('subnets', []):
            nets[subnet] = order
        for geo in rule.get('geos', []):
            code = GeoCodes.parse(geo)
            if code['province_code']:
                key, place = 'subdivision', f"{code['country_code']}-{code['province_code']}"
            elif code['country_code']:
                key, place = 'country', code['country_code']
            else:
                key, place = 'continent', code['continent_code']
            geo_map.setdefault(key, {})[place] = order
        if not rule.get('subnets') and not rule.get('geos'):
            geo_map['default'] = order
            spec['default'] = order
    if 'default' not in spec:
        spec['default'] = [VALUES]
        geo_map['default'] = [VALUES]
    spec['map'] = geo_map
    if nets:
        spec['nets'] = nets
    check = _check(first, any_obeys=any(
        v['status'] == 'obey' for p in pools.values() for v in p['values']))
    if check:
        spec['check'] = check
    return spec


def unsupported(pool):
    """Why the Meridian pool `pool` (its JSON) cannot be read as a dynamic record, or None."""
    if pool.get('policy') != 'geo':
        return f"policy {pool.get('policy', 'round_robin')} is not a geo pool written by octoDNS"
    datacenters = pool.get('datacenters', [])
    names = [dc['name'] for dc in datacenters]
    if VALUES not in names:
        return 'it has no octodns-values datacenter (not written by octoDNS)'
    if pool.get('max_datacenters', 1) != 1:
        return 'answers span more than one datacenter'
    if 'default' not in pool.get('map', {}):
        return 'clients are steered to the nearest datacenter by distance'
    for key in ('weights', 'slow_start'):
        if key in pool:
            return f'{key} is set'
    for dc in datacenters:
        if dc.get('policy', 'round_robin') not in DATACENTER_POLICIES:
            return f"datacenter {dc['name']} has policy {dc['policy']}"
        if 'weights' in dc or 'check' in dc:
            return f"datacenter {dc['name']} sets its own weights or check"
    return None


def to_dynamic(pool, family):
    """The data of a dynamic record (`family`: 4 or 6) read from an octoDNS-written pool, or
    None if that family has no endpoints."""
    datacenters = {dc['name']: dc for dc in pool['datacenters']}
    values = [_address(ep) for ep in datacenters[VALUES]['endpoints']]
    values = [a for a in values if (':' in a) == (family == 6)]
    if not values:
        return None
    geo_map = pool.get('map', {})
    chains = [(s, c) for s, c in pool.get('nets', {}).items()]
    places = []
    for key in ('continent', 'country', 'subdivision'):
        places += [(key, p, c) for p, c in geo_map.get(key, {}).items()]
    heads = [dc['name'] for dc in pool['datacenters'] if dc['name'] != VALUES]
    pools, fallbacks = {}, {}
    for chain in [c for _, c in chains] + [c for _, _, c in places] + [geo_map['default']]:
        for here, after in zip(chain, chain[1:]):
            if here != VALUES and after != VALUES:
                fallbacks[here] = after
    for name in heads:
        dc = datacenters[name]
        pool_values = [_value(ep) for ep in dc['endpoints']
                       if (':' in _address(ep)) == (family == 6)]
        pools[name] = {'values': pool_values}
        if name in fallbacks:
            pools[name]['fallback'] = fallbacks[name]
    rules = []
    for head in heads:
        rule = {}
        subnets = sorted(s for s, c in chains if c[0] == head)
        geos = sorted(_geo(key, place) for key, place, c in places if c[0] == head)
        if subnets:
            rule['subnets'] = subnets
        if geos:
            rule['geos'] = geos
        if rule:
            rule['pool'] = head
            rules.append(rule)
    default = geo_map['default'][0]
    if default != VALUES:
        rules.append({'pool': default})
    # Subnet rules come first, as octoDNS requires.
    rules.sort(key=lambda r: 0 if 'subnets' in r and 'geos' not in r else
               1 if 'subnets' in r else 2 if 'geos' in r else 3)
    used = {r['pool'] for r in rules}
    used |= {f for p in list(used) for f in _chain(pools, p)}
    pools = {p: v for p, v in pools.items() if p in used and v['values']}
    data = {
        'ttl': pool.get('ttl', 30),
        'values': values,
        'dynamic': {'pools': pools, 'rules': rules},
    }
    check = pool.get('check')
    if check:
        data['octodns'] = {'healthcheck': _healthcheck(check)}
    return data


def healthcheck_of(record):
    """The health check octoDNS describes for `record`, normalized (for comparisons)."""
    return _check(record, any_obeys=True)


def _check(record, any_obeys):
    if not any_obeys:
        return None
    protocol = record.healthcheck_protocol
    if protocol not in PROTOCOLS:
        raise Unsupported(f'{record.fqdn}: Meridian has no {protocol} health check')
    check = {'type': PROTOCOLS[protocol], 'port': record.healthcheck_port}
    if protocol != 'TCP':
        check['path'] = record.healthcheck_path
        check['host'] = record.healthcheck_host()
    return check


def _healthcheck(check):
    protocol = {v: k for k, v in PROTOCOLS.items()}.get(check.get('type'), 'HTTPS')
    healthcheck = {'protocol': protocol}
    if 'port' in check:
        healthcheck['port'] = check['port']
    if protocol != 'TCP':
        healthcheck['path'] = check.get('path', '/')
        if check.get('host'):
            healthcheck['host'] = check['host']
    return healthcheck


def _chain(pools, pid):
    seen = []
    while pid in pools and pid not in seen:
        seen.append(pid)
        pid = pools[pid].get('fallback')
    return seen


def _datacenter(name, endpoints):
    return {'name': name, 'latitude': 0.0, 'longitude': 0.0, 'policy': 'weighted',
            'endpoints': endpoints}


def _endpoint(value):
    endpoint = {'address': str(value['value'])}
    if value.get('weight', 1) != 1:
        endpoint['weight'] = value['weight']
    if value.get('status') == 'up':
        endpoint['force'] = 'up'
    elif value.get('status') == 'down':
        endpoint['drain'] = True
    return endpoint


def _address(endpoint):
    return endpoint if isinstance(endpoint, str) else endpoint['address']


def _value(endpoint):
    if isinstance(endpoint, str):
        return {'value': endpoint}
    value = {'value': endpoint['address']}
    if endpoint.get('weight', 1) != 1:
        value['weight'] = endpoint['weight']
    if endpoint.get('drain'):
        value['status'] = 'down'
    elif endpoint.get('force') == 'up':
        value['status'] = 'up'
    elif endpoint.get('force') == 'down':
        value['status'] = 'down'
    return value


def _geo(key, place):
    if key == 'continent':
        return place
    if key == 'country':
        return GeoCodes.country_to_code(place) or place
    country, province = place.split('-', 1)
    return f'NA-{country}-{province}'
