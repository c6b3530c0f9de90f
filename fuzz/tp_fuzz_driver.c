/*
 * Stand-in for libFuzzer: feed every file named on the command line (or every file of every directory named)
 * to LLVMFuzzerTestOneInput, then deterministic mutations of each (bit flips, byte sets, truncation, splicing),
 * then random inputs. Usage: tp_fuzz_X [-n ITERATIONS] PATH...
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "tp_fuzz.h"

#define FUZZ_MAX_INPUT 65536
#define MAX_SEEDS 256

static uint8_t *seeds[MAX_SEEDS];
static size_t seed_sizes[MAX_SEEDS];
static size_t seed_count;
static uint64_t rng_state = 0x2545F4914F6CDD1Dull;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void add_seed_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL || seed_count == MAX_SEEDS)
    {
        if (f != NULL)
        {
            fclose(f);
        }
        return;
    }
    uint8_t *buf = malloc(FUZZ_MAX_INPUT);
    size_t n = fread(buf, 1, FUZZ_MAX_INPUT, f);
    fclose(f);
    seeds[seed_count] = buf;
    seed_sizes[seed_count] = n;
    seed_count++;
}

static void add_seed_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) < 0)
    {
        return;
    }
    if (!S_ISDIR(st.st_mode))
    {
        add_seed_file(path);
        return;
    }
    DIR *d = opendir(path);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
    {
        if (e->d_name[0] == '.')
        {
            continue;
        }
        char child[4096];
        snprintf(child, sizeof(child), "%s/%s", path, e->d_name);
        add_seed_path(child);
    }
    if (d != NULL)
    {
        closedir(d);
    }
}

/* Copy into an exact-size heap buffer so sanitizers catch any read past the end. */
static void run_one(const uint8_t *data, size_t size)
{
    uint8_t *exact = malloc(size == 0 ? 1 : size);
    memcpy(exact, data, size);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
}

int main(int argc, char **argv)
{
    long iterations = 20000;
    for (int i = 1; i < argc; i++)
    {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
        {
            iterations = strtol(argv[++i], NULL, 10);
            continue;
        }
        add_seed_path(argv[i]);
    }
    static uint8_t work[FUZZ_MAX_INPUT];
    for (size_t s = 0; s < seed_count; s++)
    {
        run_one(seeds[s], seed_sizes[s]);
    }
    for (long it = 0; it < iterations; it++)
    {
        size_t n;
        if (seed_count == 0 || rng() % 8 == 0)
        {
            n = rng() % 512;
            for (size_t k = 0; k < n; k++)
            {
                work[k] = (uint8_t)rng();
            }
        }
        else
        {
            size_t s = rng() % seed_count;
            n = seed_sizes[s];
            memcpy(work, seeds[s], n);
            int edits = 1 + (int)(rng() % 6);
            for (int e = 0; e < edits && n > 0; e++)
            {
                switch (rng() % 5)
                {
                case 0: work[rng() % n] ^= (uint8_t)(1u << (rng() % 8)); break;
                case 1: work[rng() % n] = (uint8_t)rng(); break;
                case 2: work[rng() % n] = (uint8_t)((rng() % 2) ? 0xFF : 0x00); break;
                case 3: n = rng() % (n + 1); break;
                default:
                {
                    size_t other = rng() % seed_count;
                    size_t at = rng() % n;
                    size_t take = seed_sizes[other] < n - at ? seed_sizes[other] : n - at;
                    memcpy(work + at, seeds[other], take);
                }
                }
            }
        }
        run_one(work, n);
    }
    printf("%ld mutations over %zu seeds: no crash\n", iterations, seed_count);
    for (size_t s = 0; s < seed_count; s++)
    {
        free(seeds[s]);
    }
    return 0;
}
