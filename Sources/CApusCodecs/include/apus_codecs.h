#ifndef APUS_CODECS_H
#define APUS_CODECS_H
#endif
