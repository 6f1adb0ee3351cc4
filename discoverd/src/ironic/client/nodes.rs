//! Listing and creating nodes, for auto-discovery: the enrolment looks
//! for a node with the reported BMC address before creating one.
//!
//! A creation is not safe to repeat (a second try whose first answer was
//! lost makes a second node), so `POST /v1/nodes` is retried only while
//! no try can have reached Ironic; otherwise the caller gets
//! [`Kind::OutcomeUnknown`] and looks the node up again before anything
//! else is created (processing/enroll.rs).

use reqwest::Method;
use serde_json::{Map, Value};

use super::IronicClient;
use super::request::Req;
use crate::ironic::error::{IronicError, IronicErrorKind as Kind};
use crate::ironic::model::Node;
use crate::ironic::retry::{Budget, current_deadline};

/// Page size when listing nodes.
const PAGE: usize = 1000;

impl IronicClient {
    /// `GET /v1/nodes`, all pages, with the fields the enrolment compares
    /// (`uuid`, `driver_info`, `extra`).
    pub async fn list_nodes(&self) -> Result<Vec<Node>, IronicError> {
        let first = format!("/v1/nodes?limit={PAGE}&fields=uuid,driver_info,extra");
        self.all_pages("list_nodes", first, "/v1/nodes", "nodes").await
    }

    /// `POST /v1/nodes` with `fields` (driver, driver_info, extra, ...);
    /// returns the new node. Retried only while no try can have reached
    /// Ironic; see the module's note.
    pub async fn create_node(&self, fields: &Map<String, Value>) -> Result<Node, IronicError> {
        let body = Value::Object(fields.clone());
        let req = Req {
            call: "create_node",
            method: Method::POST,
            path: "/v1/nodes",
            template: "/v1/nodes",
            body: Some(&body),
        };
        let mut budget = Budget::new(&self.retry, current_deadline());
        let bytes = self.retrying(&req, &mut budget, true).await?;
        serde_json::from_slice(&bytes).map_err(|e| req.err(Kind::Protocol(e.to_string())))
    }
}
