//! The `kubernetes` Service's EndpointSlice, written beside its Endpoints as kube-apiserver's
//! endpoints adapter does (`pkg/controlplane/reconcilers/endpointsadapter.go`,
//! `EnsureEndpointSliceFromEndpoints`): named `kubernetes`, labelled only
//! `kubernetes.io/service-name: kubernetes` (no manager: the endpointslice controller leaves
//! it alone, the Service has no selector), the first subset's ports and addresses (all ready),
//! IPv6 when every address is; an address-type change deletes and creates it again.

use k8s_openapi::api::core::v1::EndpointSubset;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use orch_types::client::{Api, SharedClient};
use std::collections::BTreeMap;

/// `endpointSliceFromEndpoints` for the `kubernetes` Endpoints' subsets.
pub fn from_subsets(subsets: &[EndpointSubset]) -> EndpointSlice {
    let mut slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(super::NAME.into()),
            namespace: Some("default".into()),
            labels: Some(BTreeMap::from([(
                "kubernetes.io/service-name".into(),
                super::NAME.into(),
            )])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: Vec::new(),
        ports: None,
    };
    let Some(subset) = subsets.first() else {
        return slice;
    };
    slice.ports = subset.ports.as_ref().map(|ps| {
        ps.iter()
            .map(|p| EndpointPort {
                name: Some(p.name.clone().unwrap_or_default()),
                port: Some(p.port),
                protocol: Some(p.protocol.clone().unwrap_or_default()),
                app_protocol: None,
            })
            .collect()
    });
    let addresses = subset.addresses.as_deref().unwrap_or_default();
    if !addresses.is_empty() && addresses.iter().all(|a| a.ip.contains(':')) {
        slice.address_type = "IPv6".into();
    }
    slice.endpoints = addresses
        .iter()
        .map(|a| Endpoint {
            addresses: vec![a.ip.clone()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                ..Default::default()
            }),
            target_ref: a.target_ref.clone(),
            node_name: a.node_name.clone(),
            hostname: a.hostname.clone().filter(|h| !h.is_empty()),
            ..Default::default()
        })
        .collect();
    slice
}

/// Creates or updates the slice for `subsets` (nothing when it is already so).
pub async fn ensure(client: SharedClient, subsets: &[EndpointSubset]) -> Result<(), String> {
    let want = from_subsets(subsets);
    let api: Api<EndpointSlice> = Api::namespaced(client, "default");
    let current = api.get_opt(super::NAME).await.map_err(|e| e.to_string())?;
    let create = |api: Api<EndpointSlice>, want: EndpointSlice| async move {
        match api.create(&want).await {
            Ok(_) => Ok(()),
            Err(e) if e.is_already_exists() => Ok(()),
            Err(e) => Err(e.to_string()),
        }
    };
    let Some(mut cur) = current else {
        return create(api, want).await;
    };
    if cur.address_type != want.address_type {
        api.delete(super::NAME, &Default::default())
            .await
            .map_err(|e| e.to_string())?;
        return create(api, want).await;
    }
    let ports = |s: &EndpointSlice| s.ports.clone().unwrap_or_default();
    if cur.endpoints == want.endpoints
        && ports(&cur) == ports(&want)
        && cur.metadata.labels == want.metadata.labels
    {
        return Ok(());
    }
    cur.endpoints = want.endpoints;
    cur.ports = want.ports;
    cur.metadata.labels = want.metadata.labels;
    // A conflict means another API server just wrote it: the next round looks again.
    match api.replace(&cur).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_conflict() => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}
