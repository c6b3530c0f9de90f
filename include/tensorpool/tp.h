/* tensorpool: the umbrella header. */
#ifndef TENSORPOOL_TP_H
#define TENSORPOOL_TP_H

#include "tensorpool/tp_common.h"
#include "tensorpool/tp_tensor.h"

#endif
