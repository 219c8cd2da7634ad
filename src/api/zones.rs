//! Zones, record sets, pools and endpoints: read from the zone files, changed through
//! `Control::update_zone` (validate → write durably → swap), with ETag / If-Match on the zone.

use std::net::IpAddr;

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State as AxumState};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::parse_zone;
use super::{Api, ApiError};
use crate::config::TokenScope;
use crate::control::Updated;
use crate::store::Doc;
use crate::store::change::Edit;
use crate::store::edit::{self, EndpointPatch};
use crate::store::model::ZoneModel;
use crate::zone::Name;
use crate::zone::spec::{PoolSpec, RecordSpec, ZoneSpec};

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(ApiError::rejected)
}

fn spec_of(text: &str) -> Result<ZoneSpec, ApiError> {
    toml::from_str(text)
        .map_err(|e| ApiError::internal(format!("the zone file does not parse: {e}")))
}

/// The SOA serial written in a zone's TOML text, if it has an `[soa]`: read from the edit
/// document, lighter than a whole zone model.
fn serial_of(text: &str) -> Option<u32> {
    edit::serial(&edit::parse(text).ok()?)
}

/// The zone's current TOML text and tag, or 404 (409 for a zone served from a master file
/// alone).
pub(super) fn read_zone(api: &Api, origin: &Name) -> Result<Doc, ApiError> {
    let store = api.control.store();
    match store.read(origin) {
        Ok(Some(doc)) => Ok(doc),
        Ok(None) if store.read_only(origin) => Err(ApiError::conflict(format!(
            "{origin} is served from a master file alone; the API edits TOML zones"
        ))),
        Ok(None) => Err(ApiError::not_found(format!("zone {origin} not found"))),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// `If-Match` (RFC 9110 §13.1.1): `*` needs the zone to exist; tags must include the
/// current one (`current`: the zone's tag, `None` if it has no document).
fn check_if_match(headers: &HeaderMap, current: Option<&str>) -> Result<(), ApiError> {
    let Some(wanted) = headers.get(header::IF_MATCH).and_then(|v| v.to_str().ok()) else {
        return Ok(());
    };
    let ok = match current {
        None => false,
        Some(_) if wanted.trim() == "*" => true,
        Some(now) => wanted
            .split(',')
            .any(|t| t.trim().trim_start_matches("W/") == now),
    };
    match ok {
        true => Ok(()),
        false => Err(ApiError::precondition_failed(
            "If-Match does not match the zone's current ETag: it changed since you read it",
        )),
    }
}

/// Runs one change to `origin`'s file under the writer lock, off the async threads. Returns
/// whether the zone existed before, and what the change left.
async fn update(
    api: &Api,
    origin: Name,
    headers: &HeaderMap,
    mut change: impl FnMut(Option<String>) -> Result<Option<String>, ApiError> + Send + 'static,
) -> Result<(bool, Updated), ApiError> {
    let state = api.control.clone();
    let headers = headers.clone();
    tokio::task::spawn_blocking(move || {
        let mut existed = false;
        let next = state.update_zone(&origin, |current| {
            check_if_match(&headers, current.as_ref().map(|d| d.etag.as_str()))?;
            existed = current.is_some();
            change(current.map(|d| d.text))
        })?;
        Ok((existed, next))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
}

/// The answer to a successful change: the zone's new serial and ETag.
fn changed(status: StatusCode, origin: &Name, updated: Updated) -> Response {
    let serial = updated.text.as_deref().and_then(serial_of);
    changed_to(status, origin, updated.etag, serial)
}

/// [`changed`], with the new tag and serial known.
fn changed_to(
    status: StatusCode,
    origin: &Name,
    tag: Option<String>,
    serial: Option<u32>,
) -> Response {
    let Some(tag) = tag else {
        return (
            status,
            Json(json!({ "zone": origin.to_string(), "deleted": true })),
        )
            .into_response();
    };
    let body = json!({ "zone": origin.to_string(), "serial": serial, "etag": tag });
    (status, [(header::ETAG, tag)], Json(body)).into_response()
}

fn zone_name(zone: &str) -> Result<Name, ApiError> {
    parse_zone(zone).map_err(ApiError::bad_request)
}

/// The zone in the path, if the request's token may use it with `scope`.
pub(super) fn authorize(
    api: &Api,
    zone: &str,
    headers: &HeaderMap,
    scope: TokenScope,
) -> Result<Name, ApiError> {
    let origin = zone_name(zone)?;
    api.tokens.check(headers, scope, Some(&origin))?;
    Ok(origin)
}

/// The zone in the path, read with a token of `scope`: its origin, its ETag and what `read`
/// makes of its model (see `Control::read_model`), off the async threads.
async fn read_authorized<T: Send + 'static>(
    api: &Api,
    zone: &str,
    headers: &HeaderMap,
    scope: TokenScope,
    read: impl FnOnce(&ZoneModel) -> Result<T, ApiError> + Send + 'static,
) -> Result<(Name, String, T), ApiError> {
    let origin = authorize(api, zone, headers, scope)?;
    let control = api.control.clone();
    let o = origin.clone();
    let read = tokio::task::spawn_blocking(move || {
        control.read_model(&o, |model, tag| read(model).map(|t| (tag, t)))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    match read? {
        Some(read) => {
            let (tag, t) = read?;
            Ok((origin, tag, t))
        }
        None if api.control.store().read_only(&origin) => Err(ApiError::conflict(format!(
            "{origin} is served from a master file alone; the API edits TOML zones"
        ))),
        None => Err(ApiError::not_found(format!("zone {origin} not found"))),
    }
}

/// One edit of the existing zone in the path by a token that may write it (see
/// `Control::edit_zone`), answered with the zone's new serial and ETag.
async fn edit_zone(
    api: &Api,
    zone: &str,
    headers: &HeaderMap,
    edit: Edit,
) -> Result<Response, ApiError> {
    let origin = authorize(api, zone, headers, TokenScope::Write)?;
    if api.control.store().read_only(&origin) {
        return Err(ApiError::conflict(format!(
            "{origin} is served from a master file alone; the API edits TOML zones"
        )));
    }
    let control = api.control.clone();
    let headers = headers.clone();
    let o = origin.clone();
    let edited = tokio::task::spawn_blocking(move || {
        control.edit_zone(&o, edit, |tag| check_if_match(&headers, tag))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(changed_to(
        StatusCode::OK,
        &origin,
        Some(edited.etag),
        edited.serial,
    ))
}

/// `GET /zones`.
pub async fn list(
    AxumState(api): AxumState<Api>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    api.tokens.check(&headers, TokenScope::Read, None)?;
    let snapshot = api.control.snapshot();
    let mut zones: Vec<_> = snapshot
        .zones
        .iter()
        .filter(|z| api.tokens.covers(&headers, &z.origin))
        .map(|z| json!({ "zone": z.origin.to_string(), "serial": z.serial() }))
        .collect();
    zones.sort_by(|a, b| a["zone"].as_str().cmp(&b["zone"].as_str()));
    Ok(Json(json!({ "zones": zones })))
}

/// `GET /zones/{zone}`: the zone as the JSON form of its TOML file, with its ETag.
pub async fn get_zone(
    AxumState(api): AxumState<Api>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read = |model: &ZoneModel| Ok(model.spec().clone());
    let (_, tag, spec) = read_authorized(&api, &zone, &headers, TokenScope::Read, read).await?;
    Ok(([(header::ETAG, tag)], Json(spec)).into_response())
}

/// `PUT /zones/{zone}`: create or replace a whole zone (idempotent).
pub async fn put_zone(
    AxumState(api): AxumState<Api>,
    Path(zone): Path<String>,
    headers: HeaderMap,
    spec: Result<Json<ZoneSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let origin = authorize(&api, &zone, &headers, TokenScope::Write)?;
    let spec = body(spec)?;
    let (existed, updated) = update(&api, origin.clone(), &headers, move |current| {
        let text = toml::to_string(&spec).map_err(|e| ApiError::bad_request(e.to_string()))?;
        let mut doc = edit::parse(&text)?;
        // Unchanged content stays unchanged (idempotent PUT); any change bumps the serial.
        if current
            .as_deref()
            .map(spec_of)
            .transpose()?
            .map(|c| toml::to_string(&c).ok())
            == Some(Some(text.clone()))
        {
            return Ok(current);
        }
        edit::bump_serial(&mut doc, current.as_deref().and_then(serial_of));
        Ok(Some(doc.to_string()))
    })
    .await?;
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok(changed(status, &origin, updated))
}

/// `DELETE /zones/{zone}`.
pub async fn delete_zone(
    AxumState(api): AxumState<Api>,
    Path(zone): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let origin = authorize(&api, &zone, &headers, TokenScope::Write)?;
    read_zone(&api, &origin)?;
    let (_, updated) = update(&api, origin.clone(), &headers, |current| match current {
        Some(_) => Ok(None),
        None => Err(ApiError::not_found("zone not found")),
    })
    .await?;
    Ok(changed(StatusCode::OK, &origin, updated))
}

/// `GET /zones/{zone}/records/{name}/{type}`.
pub async fn get_records(
    AxumState(api): AxumState<Api>,
    Path((zone, name, rtype)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read = move |model: &ZoneModel| {
        let found = model.record_set(&name, &rtype).cloned();
        found.ok_or_else(|| ApiError::not_found(format!("record set {name} {rtype} not found")))
    };
    let (_, tag, found) = read_authorized(&api, &zone, &headers, TokenScope::Read, read).await?;
    Ok(([(header::ETAG, tag)], Json(found)).into_response())
}

/// The body of a record set PUT: its name and type come from the path.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsBody {
    #[serde(default)]
    ttl: Option<u32>,
    data: Vec<String>,
}

/// `PUT /zones/{zone}/records/{name}/{type}`.
pub async fn put_records(
    AxumState(api): AxumState<Api>,
    Path((zone, name, rtype)): Path<(String, String, String)>,
    headers: HeaderMap,
    records: Result<Json<RecordsBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let records = body(records)?;
    let spec = RecordSpec {
        name,
        rtype: rtype.to_ascii_uppercase(),
        ttl: records.ttl,
        data: records.data,
    };
    edit_zone(&api, &zone, &headers, Edit::SetRecords(spec)).await
}

/// `DELETE /zones/{zone}/records/{name}/{type}`.
pub async fn delete_records(
    AxumState(api): AxumState<Api>,
    Path((zone, name, rtype)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    edit_zone(&api, &zone, &headers, Edit::RemoveRecords { name, rtype }).await
}

/// `GET /zones/{zone}/pools/{name}`.
pub async fn get_pool(
    AxumState(api): AxumState<Api>,
    Path((zone, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let read = move |model: &ZoneModel| pool_of(model, &name);
    let (_, tag, found) = read_authorized(&api, &zone, &headers, TokenScope::Read, read).await?;
    Ok(([(header::ETAG, tag)], Json(found)).into_response())
}

/// Pool `name` of the zone `model`, or 404.
fn pool_of(model: &ZoneModel, name: &str) -> Result<PoolSpec, ApiError> {
    let found = model.pool(name).cloned();
    found.ok_or_else(|| ApiError::not_found(format!("pool {name} not found")))
}

/// `PUT /zones/{zone}/pools/{name}`.
pub async fn put_pool(
    AxumState(api): AxumState<Api>,
    Path((zone, name)): Path<(String, String)>,
    headers: HeaderMap,
    pool: Result<Json<PoolSpec>, JsonRejection>,
) -> Result<Response, ApiError> {
    let pool = body(pool)?;
    edit_zone(
        &api,
        &zone,
        &headers,
        Edit::SetPool {
            name,
            pool: Box::new(pool),
        },
    )
    .await
}

/// `DELETE /zones/{zone}/pools/{name}`.
pub async fn delete_pool(
    AxumState(api): AxumState<Api>,
    Path((zone, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    edit_zone(&api, &zone, &headers, Edit::RemovePool { name }).await
}

/// `PATCH /zones/{zone}/pools/{name}/endpoints/{address}`: `weight`, `drain`, `force`
/// (written to the zone), `load` (a `least_load` report: served at once, never written).
pub async fn patch_endpoint(
    AxumState(api): AxumState<Api>,
    Path((zone, name, address)): Path<(String, String, String)>,
    headers: HeaderMap,
    patch: Result<Json<EndpointPatch>, JsonRejection>,
) -> Result<Response, ApiError> {
    let address: IpAddr = address
        .parse()
        .map_err(|_| ApiError::invalid("address", format!("{address} is not an IP address")))?;
    let patch = body(patch)?;
    let load = patch.load;
    if let Some(load) = load
        && !(load.is_finite() && load >= 0.0)
    {
        return Err(ApiError::invalid("load", "must be a number of at least 0"));
    }
    let durable = patch.weight.is_some() || patch.drain.is_some() || patch.force.is_some();
    let response = match durable {
        true => {
            let edit = Edit::PatchEndpoint {
                pool: name.clone(),
                address,
                patch,
            };
            edit_zone(&api, &zone, &headers, edit).await?
        }
        false => {
            let read = move |model: &ZoneModel| {
                let pool = pool_of(model, &name)?;
                let mut endpoints = pool
                    .endpoints
                    .iter()
                    .chain(pool.datacenters.iter().flat_map(|d| &d.endpoints));
                match endpoints.any(|e| e.address == address) {
                    true => Ok(()),
                    false => Err(ApiError::not_found(format!(
                        "endpoint {address} in pool {name} not found"
                    ))),
                }
            };
            read_authorized(&api, &zone, &headers, TokenScope::Write, read).await?;
            Json(json!({ "address": address, "load": load })).into_response()
        }
    };
    if let Some(load) = load {
        let control = api.control.clone();
        tokio::task::spawn_blocking(move || control.report_load(address, load as f32))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
    }
    Ok(response)
}
