// Owners of libcurl's handles, for the programs that speak HTTP out with libcurl (the worker's
// http task and object store, the CLI's API client). Header-only: the includer links libcurl.
#pragma once

#include <curl/curl.h>

#include <memory>
#include <string>

namespace kcron::curl {

struct EasyCleanup {
  void operator()(CURL* easy) const { curl_easy_cleanup(easy); }
};
struct MultiCleanup {
  void operator()(CURLM* multi) const { curl_multi_cleanup(multi); }
};
struct UrlCleanup {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
struct CurlFree {
  void operator()(char* text) const { curl_free(text); }
};
using EasyHandle = std::unique_ptr<CURL, EasyCleanup>;
using MultiHandle = std::unique_ptr<CURLM, MultiCleanup>;
using UrlHandle = std::unique_ptr<CURLU, UrlCleanup>;
using CurlString = std::unique_ptr<char, CurlFree>;

// A curl_slist (request headers); curl keeps pointers into it, so it must outlive the transfer.
class StringList {
 public:
  StringList() = default;
  StringList(const StringList&) = delete;
  StringList& operator=(const StringList&) = delete;
  ~StringList() { curl_slist_free_all(head_); }

  // False when curl could not allocate the entry (the list is as it was).
  bool append(const std::string& line) {
    curl_slist* next = curl_slist_append(head_, line.c_str());
    if (next == nullptr) return false;
    head_ = next;
    return true;
  }
  curl_slist* get() const { return head_; }

 private:
  curl_slist* head_ = nullptr;
};

}  // namespace kcron::curl
