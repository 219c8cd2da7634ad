"""An octoDNS provider for Meridian, through its HTTP API.

    providers:
      meridian:
        class: octodns_meridian.MeridianProvider
        url: http://127.0.0.1:8053
        token: env/MERIDIAN_TOKEN

Static record sets are Meridian's record sets; dynamic A/AAAA records are its geo pools (see
`pools`). Every change is made with If-Match on the ETag the plan was made from, so a zone
changed in between is refused rather than overwritten.
"""

import logging
from collections import defaultdict

from octodns.provider import ProviderException
from octodns.provider.base import BaseProvider
from octodns.record import Create, Delete, Record, Update
from octodns.record.rr import Rrset

from . import pools
from .client import Client, MeridianError, path

__version__ = '0.1.0'

# The octoDNS types Meridian serves (ALIAS and URLFWD are not DNS types).
TYPES = {
    'A', 'AAAA', 'CAA', 'CNAME', 'DNAME', 'DS', 'HTTPS', 'LOC', 'MX', 'NAPTR', 'NS',
    'OPENPGPKEY', 'PTR', 'SPF', 'SRV', 'SSHFP', 'SVCB', 'TLSA', 'TXT', 'URI',
}
# Where each type's RDATA holds a domain name (field index), made absolute when read.
NAME_FIELDS = {
    'CNAME': 0, 'DNAME': 0, 'NS': 0, 'PTR': 0, 'MX': 1, 'SRV': 3, 'NAPTR': 5,
    'SVCB': 1, 'HTTPS': 1,
}


class MeridianProvider(BaseProvider):
    SUPPORTS_GEO = False
    SUPPORTS_DYNAMIC = True
    SUPPORTS_DYNAMIC_SUBNETS = True
    SUPPORTS_POOL_VALUE_STATUS = True
    SUPPORTS_MULTIVALUE_PTR = True
    SUPPORTS_ROOT_NS = True
    SUPPORTS = TYPES

    def __init__(self, id, url, token, timeout=30, *args, **kwargs):
        self.log = logging.getLogger(f'MeridianProvider[{id}]')
        super().__init__(id, *args, **kwargs)
        self.client = Client(url, token, timeout)
        # Per zone: the ETag populate read, and the pools found (name -> pool JSON).
        self._etags = {}
        self._pools = {}

    def list_zones(self):
        return sorted(z if z.endswith('.') else f'{z}.' for z in self._call(self.client.zones))

    def populate(self, zone, target=False, lenient=False):
        body, etag = self._call(self.client.zone, zone.name)
        if body is None:
            if target:
                raise ProviderException(
                    f'{zone.decoded_name}: Meridian ({self.client.url}) does not serve this '
                    'zone; create it there first (a zone file, or PUT /api/v1/zones/...)'
                )
            return False
        self._etags[zone.name] = etag
        self._pools[zone.name] = body.get('pools', {})
        default_ttl = body.get('ttl', 3600)
        before = len(zone.records)
        if body.get('ns'):
            values = [_absolute(n, zone.name) for n in body['ns']]
            rrset = Rrset(zone.name, 'NS', default_ttl, values)
            zone.add_record(Record.from_rrset(zone, rrset, lenient=lenient, source=self),
                            lenient=lenient)
        for spec in body.get('records', []):
            rtype = spec['type'].upper()
            fqdn = _absolute(spec['name'], zone.name)
            if rtype not in TYPES:
                self.log.warning('populate: %s %s is a type octoDNS does not manage; left alone',
                                 fqdn, rtype)
                continue
            data = [_absolute_names(rtype, d, zone.name) for d in spec['data']]
            rrset = Rrset(fqdn, rtype, spec.get('ttl', default_ttl), data)
            record = Record.from_rrset(zone, rrset, lenient=lenient, source=self)
            zone.add_record(record, lenient=lenient)
        for name, pool in body.get('pools', {}).items():
            self._populate_pool(zone, name, pool, lenient)
        self.log.info('populate: found %d records', len(zone.records) - before)
        return True

    def _populate_pool(self, zone, name, pool, lenient):
        fqdn = _absolute(name, zone.name)
        relative = _relative(fqdn, zone.name)
        if pool.get('policy') == 'geo' or pool.get('datacenters'):
            why = pools.unsupported(pool)
            if why:
                self.log.warning('populate: pool %s is left alone: octoDNS cannot express it '
                                 '(%s)', fqdn, why)
                return
            shaped = pool
        else:
            shaped = _one_pool(pool)
            if shaped is None:
                self.log.warning('populate: pool %s is left alone: octoDNS cannot express its '
                                 'policy %s', fqdn, pool.get('policy', 'round_robin'))
                return
        for rtype, family in (('A', 4), ('AAAA', 6)):
            data = pools.to_dynamic(shaped, family)
            if data is None:
                continue
            data['type'] = rtype
            record = Record.new(zone, relative, data, source=self, lenient=lenient)
            zone.add_record(record, lenient=lenient)

    def _extra_changes(self, existing, desired, changes):
        """A dynamic record whose health check alone changed (octoDNS compares values and
        rules, not `octodns.healthcheck`)."""
        changed = {(c.record.name, c.record._type) for c in changes}
        extra = []
        found = {(r.name, r._type): r for r in existing.records}
        for record in desired.records:
            key = (record.name, record._type)
            if key in changed or not getattr(record, 'dynamic', None):
                continue
            was = found.get(key)
            if was is None or not getattr(was, 'dynamic', None):
                continue
            if _check_of(record) != _check_of(was):
                extra.append(Update(was, record))
        return extra

    def _apply(self, plan):
        origin = plan.desired.name
        etag = self._etags.get(origin)
        known = self._pools.get(origin, {})
        by_name = defaultdict(list)
        for change in plan.changes:
            record = change.new if change.new is not None else change.existing
            by_name[record.name].append(change)
        for name, changes in sorted(by_name.items()):
            pool_key = _pool_key(known, name, origin)
            if pool_key is not None and not _expressible(known[pool_key]):
                self.log.warning("_apply: %s is a pool octoDNS cannot express; its changes are "
                                 "left out (change it through Meridian's API)", name or '@')
                continue
            steered = [c for c in changes if c.record._type in ('A', 'AAAA') and (
                _dynamic(c.new) or _dynamic(c.existing))]
            if steered:
                etag = self._apply_pool(plan, name, known, pool_key, etag)
            for change in changes:
                if change in steered:
                    if change.new is None or _dynamic(change.new):
                        continue
                    # A static record where the pool was.
                    change = Create(change.new)
                etag = self._apply_static(plan, change, etag)
        self._etags[origin] = etag
        return True

    def _apply_pool(self, plan, name, known, pool_key, etag):
        origin = plan.desired.name
        records = [r for r in plan.desired.records if r.name == name
                   and r._type in ('A', 'AAAA') and _dynamic(r)]
        target = pool_key or (name or '@')
        if not records:
            _, _, etag = self._request('DELETE', path('zones', origin, 'pools', target), etag)
            return etag
        try:
            spec = pools.to_pool(sorted(records, key=lambda r: r._type),
                                 existing=known.get(pool_key) if pool_key else None)
        except pools.Unsupported as error:
            raise ProviderException(str(error)) from None
        _, _, etag = self._request('PUT', path('zones', origin, 'pools', target), etag, spec)
        return etag

    def _apply_static(self, plan, change, etag):
        origin = plan.desired.name
        record = change.record
        name = record.name or '@'
        if record._type == 'NS' and not record.name:
            return self._apply_root_ns(origin, change, etag)
        where = path('zones', origin, 'records', name, record._type)
        if isinstance(change, Delete):
            _, _, etag = self._request('DELETE', where, etag)
            return etag
        body = {'ttl': record.ttl, 'data': list(record.to_rrset().rdatas)}
        _, _, etag = self._request('PUT', where, etag, body)
        return etag

    def _apply_root_ns(self, origin, change, etag):
        _, zone, now = self._request('GET', path('zones', origin), None)
        if now != etag:
            raise ProviderException(f'{origin}: changed since it was planned; plan again')
        zone['ns'] = [] if isinstance(change, Delete) else list(change.new.values)
        _, _, etag = self._request('PUT', path('zones', origin), etag, zone)
        return etag

    def _request(self, method, where, etag, body=None):
        return self._call(self.client.request, method, where, body, etag)

    def _call(self, function, *args):
        try:
            return function(*args)
        except MeridianError as error:
            raise ProviderException(f'Meridian: {error}') from None


def _expressible(pool):
    """Whether octoDNS can read and write Meridian's pool `pool` (its JSON)."""
    if pool.get('policy') == 'geo' or pool.get('datacenters'):
        return pools.unsupported(pool) is None
    return _one_pool(pool) is not None


def _one_pool(pool):
    """A weighted or round-robin pool as an octoDNS-shaped geo pool of one datacenter,
    `pool` (the dynamic record octoDNS reads it as); None for other policies."""
    if pool.get('policy', 'round_robin') not in pools.DATACENTER_POLICIES or \
            any(k in pool for k in ('weights', 'slow_start')):
        return None
    endpoints = pool.get('endpoints', [])
    values = [{'address': e if isinstance(e, str) else e['address'], 'force': 'up'}
              for e in endpoints]
    shaped = {
        'policy': 'geo', 'ttl': pool.get('ttl', 30),
        'datacenters': [
            {'name': 'pool', 'endpoints': endpoints},
            {'name': pools.VALUES, 'endpoints': values},
        ],
        'map': {'default': ['pool', pools.VALUES]},
    }
    if 'check' in pool:
        shaped['check'] = pool['check']
    return shaped


def _dynamic(record):
    return record is not None and bool(getattr(record, 'dynamic', None))


def _check_of(record):
    try:
        return pools.healthcheck_of(record)
    except pools.Unsupported:
        return None


def _pool_key(known, name, origin):
    """The key of Meridian's pool at `name` (relative), if there is one."""
    fqdn = f'{name}.{origin}' if name else origin
    for key in known:
        if _absolute(key, origin) == fqdn:
            return key
    return None


def _absolute(name, origin):
    if name == '@':
        return origin
    return name if name.endswith('.') else f'{name}.{origin}'


def _relative(fqdn, origin):
    return '' if fqdn == origin else fqdn[: -len(origin) - 1]


def _absolute_names(rtype, rdata, origin):
    """`rdata` with the domain name it holds made absolute (Meridian keeps names as written)."""
    field = NAME_FIELDS.get(rtype)
    if field is None:
        return rdata
    parts = rdata.split()
    if field >= len(parts) or parts[field].endswith('.'):
        return rdata
    parts[field] = _absolute(parts[field], origin)
    return ' '.join(parts)
