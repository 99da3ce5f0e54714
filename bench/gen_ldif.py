#!/usr/bin/env python3
"""Generates a directory for benchmarks: N inetOrgPerson users under
ou=people and G groupOfNames groups under ou=groups, each user in K random
groups (seeded, so runs are comparable). slapadd adds entryUUID itself.
Usage: gen_ldif.py USERS GROUPS PER_USER > data.ldif"""
import random
import sys

n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
g = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000
k = int(sys.argv[3]) if len(sys.argv) > 3 else 3
S = "dc=example,dc=com"
rnd = random.Random(42)
w = sys.stdout.write
w(f"dn: {S}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n\n")
w(f"dn: ou=people,{S}\nobjectClass: organizationalUnit\nou: people\n\n")
w(f"dn: ou=groups,{S}\nobjectClass: organizationalUnit\nou: groups\n\n")
members = [[] for _ in range(g)]
first = ["Ada", "Alan", "Grace", "Linus", "Ken", "Dennis", "Barbara", "Edsger", "Donald", "Margaret"]
last = ["Lovelace", "Turing", "Hopper", "Torvalds", "Thompson", "Ritchie", "Liskov", "Dijkstra", "Knuth", "Hamilton"]
for i in range(n):
    for grp in rnd.sample(range(g), k):
        members[grp].append(i)
    fn, ln = first[i % 10], last[(i // 10) % 10]
    w(f"dn: uid=user{i:06d},ou=people,{S}\nobjectClass: inetOrgPerson\nuid: user{i:06d}\n"
      f"cn: {fn} {ln} {i}\nsn: {ln}\ngivenName: {fn}\nmail: user{i:06d}@example.com\n"
      f"employeeNumber: {i}\ndepartmentNumber: D{i % 50:02d}\ntitle: Engineer\nl: City{i % 7}\n"
      f"roomNumber: R{i % 400}\ntelephoneNumber: +1 555 {i:07d}\n\n")
for grp in range(g):
    w(f"dn: cn=group{grp:04d},ou=groups,{S}\nobjectClass: groupOfNames\ncn: group{grp:04d}\n")
    for i in members[grp]:
        w(f"member: uid=user{i:06d},ou=people,{S}\n")
    w("\n")
