"""Meridian's HTTP API, as the provider uses it: a zone read whole with its ETag, and changes
of one record set or pool at a time, each made only if the zone is still at the ETag the
provider last saw (If-Match)."""

import json
import urllib.error
import urllib.parse
import urllib.request


class MeridianError(Exception):
    """Meridian refused a request, or could not be reached."""


class Client:
    def __init__(self, url, token, timeout=30):
        self.url = url.rstrip('/') + '/api/v1'
        self.token = token
        self.timeout = timeout

    def request(self, method, path, body=None, etag=None):
        """(status, parsed body, ETag) of one request; an error status raises MeridianError."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header('Authorization', f'Bearer {self.token}')
        if data is not None:
            request.add_header('Content-Type', 'application/json')
        if etag is not None:
            request.add_header('If-Match', etag)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                text = response.read().decode()
                return response.status, _json(text), response.headers.get('ETag')
        except urllib.error.HTTPError as error:
            text = error.read().decode(errors='replace')
            message = _json(text).get('error', text) if text else error.reason
            raise MeridianError(f'{method} {path}: {error.code} {message}') from None
        except OSError as error:
            raise MeridianError(f'{method} {path}: Meridian at {self.url} is not reachable: {error}')

    def zones(self):
        _, body, _ = self.request('GET', '/zones')
        return [z['zone'] for z in body.get('zones', [])]

    def zone(self, origin):
        """The zone as JSON and its ETag; None if Meridian does not serve it."""
        try:
            _, body, etag = self.request('GET', f'/zones/{_quote(origin)}')
        except MeridianError as error:
            if ': 404 ' in str(error):
                return None, None
            raise
        return body, etag


def path(*parts):
    return '/' + '/'.join(_quote(p) for p in parts)


def _quote(part):
    return urllib.parse.quote(part.rstrip('.') if part.endswith('.') and part != '.' else part, safe='')


def _json(text):
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}
