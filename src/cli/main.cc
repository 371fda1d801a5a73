// Placeholder entry point until the subcommands land.
#include <cstdio>
int main() { std::puts("gannet"); return 0; }
