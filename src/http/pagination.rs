//! Page numbers in, the original's paginated shape out:
//! `{"count", "next", "previous", "results"}`.
//!
//! `?page=N` counts from 1; `?page_size=M` defaults to 10 and is capped at 100
//! (a larger value is clamped, as the original did). A page past the last is 404;
//! the first page of an empty listing is an empty 200.

use actix_web::dev::Payload;
use actix_web::http::header::ContentType;
use actix_web::{FromRequest, HttpRequest, HttpResponse};
use futures_util::future::{ready, Ready};
use serde::Serialize;
use url::form_urlencoded;
use utoipa::ToSchema;

use super::error::ApiError;
use crate::db::{JsonListing, Listing, PageWindow};

/// Rows per page when the client does not say.
pub const DEFAULT_PAGE_SIZE: i64 = 10;
/// The most rows a page may hold.
pub const MAX_PAGE_SIZE: i64 = 100;

/// The requested page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    /// 1-based page number.
    pub page: i64,
    /// Rows per page, in 1..=100.
    pub page_size: i64,
}

/// One page of a list, the original's shape.
#[derive(Serialize, ToSchema)]
pub struct PageBody<T> {
    /// Objects in the whole list.
    pub count: i64,
    /// The next page's URL, or null.
    pub next: Option<String>,
    /// The previous page's URL, or null.
    pub previous: Option<String>,
    /// This page's objects.
    pub results: Vec<T>,
}

impl PageRequest {
    /// Reads `page` and `page_size` from a query string.
    pub fn from_query(query: &str) -> Result<PageRequest, ApiError> {
        let mut request = PageRequest {
            page: 1,
            page_size: DEFAULT_PAGE_SIZE,
        };
        for (name, value) in form_urlencoded::parse(query.as_bytes()) {
            match name.as_ref() {
                "page" => request.page = parse_page(&value)?,
                "page_size" => request.page_size = parse_page_size(&value)?,
                _ => {}
            }
        }
        Ok(request)
    }

    /// The rows this page covers.
    pub fn window(&self) -> PageWindow {
        PageWindow {
            limit: self.page_size,
            offset: (self.page - 1).saturating_mul(self.page_size),
        }
    }

    /// Answers one page of `listing`, with links to its neighbours.
    pub fn respond<T: Serialize>(
        &self,
        request: &HttpRequest,
        listing: Listing<T>,
    ) -> Result<HttpResponse, ApiError> {
        let (next, previous) = self.links(request, listing.total)?;
        Ok(HttpResponse::Ok().json(PageBody {
            count: listing.total,
            next,
            previous,
            results: listing.items,
        }))
    }

    /// [`PageRequest::respond`] for a page whose rows are already JSON:
    /// the same body, with the rows copied in rather than serialized.
    pub fn respond_json(
        &self,
        request: &HttpRequest,
        listing: JsonListing,
    ) -> Result<HttpResponse, ApiError> {
        let (next, previous) = self.links(request, listing.total)?;
        let mut body = Vec::with_capacity(listing.results.len() + 256);
        body.extend_from_slice(b"{\"count\":");
        body.extend_from_slice(itoa::Buffer::new().format(listing.total).as_bytes());
        for (name, link) in [(&b",\"next\":"[..], next), (b",\"previous\":", previous)] {
            body.extend_from_slice(name);
            serde_json::to_writer(&mut body, &link)
                .map_err(|error| ApiError::Internal(error.into()))?;
        }
        body.extend_from_slice(b",\"results\":[");
        body.extend_from_slice(&listing.results);
        body.extend_from_slice(b"]}");
        Ok(HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(body))
    }

    /// The links to the pages before and after this one of a listing of
    /// `total` rows; a page past the last is not found.
    fn links(
        &self,
        request: &HttpRequest,
        total: i64,
    ) -> Result<(Option<String>, Option<String>), ApiError> {
        let last_page = ((total + self.page_size - 1) / self.page_size).max(1);
        if self.page > last_page {
            return Err(ApiError::NotFound);
        }
        let link = |page: i64| page_link(request, page);
        Ok((
            (self.page < last_page).then(|| link(self.page + 1)),
            (self.page > 1).then(|| link(self.page - 1)),
        ))
    }
}

impl FromRequest for PageRequest {
    type Error = ApiError;
    type Future = Ready<Result<PageRequest, ApiError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(PageRequest::from_query(request.query_string()))
    }
}

fn parse_page(value: &str) -> Result<i64, ApiError> {
    match value.parse::<i64>() {
        Ok(page) if page >= 1 => Ok(page),
        _ => Err(ApiError::NotFound),
    }
}

fn parse_page_size(value: &str) -> Result<i64, ApiError> {
    match value.parse::<i64>() {
        Ok(size) if size >= 1 => Ok(size.min(MAX_PAGE_SIZE)),
        _ => Err(ApiError::field(
            "page_size",
            format!("must be an integer from 1 to {MAX_PAGE_SIZE}"),
        )),
    }
}

/// The absolute URL of `page` of the current listing, keeping other query
/// parameters; page 1 drops the `page` parameter, as the original did.
fn page_link(request: &HttpRequest, page: i64) -> String {
    let info = request.connection_info();
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (name, value) in form_urlencoded::parse(request.query_string().as_bytes()) {
        if name != "page" {
            query.append_pair(&name, &value);
        }
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    let query = query.finish();
    let path = request.path().trim_end_matches('/');
    let separator = if query.is_empty() { "" } else { "?" };
    format!(
        "{}://{}{path}/{separator}{query}",
        info.scheme(),
        info.host()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_page_one_of_ten() {
        let request = PageRequest::from_query("").unwrap();
        assert_eq!(
            request,
            PageRequest {
                page: 1,
                page_size: 10
            }
        );
        assert_eq!(
            request.window(),
            PageWindow {
                limit: 10,
                offset: 0
            }
        );
    }

    #[test]
    fn page_size_is_clamped_to_the_maximum() {
        let request = PageRequest::from_query("page=3&page_size=500").unwrap();
        assert_eq!(request.page_size, 100);
        assert_eq!(request.window().offset, 200);
    }

    #[test]
    fn a_page_that_is_not_a_positive_number_is_not_found() {
        for query in ["page=0", "page=-1", "page=abc"] {
            assert!(matches!(
                PageRequest::from_query(query),
                Err(ApiError::NotFound)
            ));
        }
    }

    #[test]
    fn a_bad_page_size_is_a_validation_error() {
        assert!(matches!(
            PageRequest::from_query("page_size=0"),
            Err(ApiError::Validation(_))
        ));
    }
}
