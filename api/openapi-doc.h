/* openapi-doc: the OpenAPI document compiled into smpgwd (generated from api/openapi/ by the build) */
#pragma once

#include <stddef.h>

extern const char api_openapi_yaml[];
extern const size_t api_openapi_yaml_len;
